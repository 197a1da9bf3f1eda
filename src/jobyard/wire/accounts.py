"""Native API bodies for accounts and tokens."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from jobyard.wire.values import described

Strict = ConfigDict(extra="forbid")


@described(
    {
        "name": "A name to tell the token by.",
        "role": "agent for a node's token (it only acts as an agent); else the member's role.",
        "expires_at": "When it stops working (ISO 8601); null: never.",
        "email": "An admin may make one for another member, by email.",
    }
)
class TokenIn(BaseModel):
    model_config = Strict
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] = "api"
    role: StrictStr | None = None
    expires_at: dt.datetime | None = None
    email: StrictStr | None = None


@described(
    {
        "email": "The person's email: a new user is made, an existing one joins.",
        "role": "viewer, user, admin or agent.",
        "display_name": "The name shown for them.",
        "password": "A password to sign in to the dashboard with.",
    }
)
class MemberIn(BaseModel):
    model_config = Strict
    email: Annotated[StrictStr, Field(max_length=254)]
    role: StrictStr
    display_name: Annotated[StrictStr, Field(max_length=200)] | None = None
    password: Annotated[StrictStr, Field(max_length=1000)] | None = None


@described(
    {
        "name": "The Chef user or client name (X-Ops-UserId).",
        "email": "The member this Chef name acts as.",
        "role": "Limit the name to a role, or agent; null: the member's role.",
        "public_key": "The public key (PEM); left out, a key pair is made and its private key "
        "shown once.",
    }
)
class ChefKeyIn(BaseModel):
    """A Chef identity: ``public_key`` (PEM) to register, or none to have a pair made."""

    model_config = Strict
    name: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    email: Annotated[StrictStr, Field(max_length=254)]
    role: StrictStr | None = None
    public_key: Annotated[StrictStr, Field(max_length=20000)] | None = None
