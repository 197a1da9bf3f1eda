"""Native API bodies for accounts and tokens."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Strict = ConfigDict(extra="forbid")


class TokenIn(BaseModel):
    model_config = Strict
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] = "api"
    role: StrictStr | None = None
    expires_at: dt.datetime | None = None
    email: StrictStr | None = None


class MemberIn(BaseModel):
    model_config = Strict
    email: Annotated[StrictStr, Field(max_length=254)]
    role: StrictStr
    display_name: Annotated[StrictStr, Field(max_length=200)] | None = None
    password: Annotated[StrictStr, Field(max_length=1000)] | None = None


class ChefKeyIn(BaseModel):
    """A Chef identity: ``public_key`` (PEM) to register, or none to have a pair made."""

    model_config = Strict
    name: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    email: Annotated[StrictStr, Field(max_length=254)]
    role: StrictStr | None = None
    public_key: Annotated[StrictStr, Field(max_length=20000)] | None = None
