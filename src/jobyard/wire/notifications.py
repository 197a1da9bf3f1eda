"""Native API bodies for watchers, shares, notification settings and webhook subscriptions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.values import Int64, Patch, described

Strict = ConfigDict(extra="forbid")


class WatchIn(BaseModel):
    """Watch a job or cluster; an admin may name another member with ``user_id``."""

    model_config = Strict
    user_id: Int64 | None = Field(
        default=None, description="Another member to subscribe (admins only); default: you."
    )


class ShareIn(BaseModel):
    """Share a job with an existing user, by email, with an optional message."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "bob@example.com", "message": "have a look"}]},
    )
    email: Annotated[StrictStr, Field(max_length=254)] = Field(
        description="The user to share it with."
    )
    message: Annotated[StrictStr, Field(max_length=10000)] = Field(
        default="", description="A note sent with the share."
    )


class ChannelsIn(BaseModel):
    model_config = Strict
    in_app: StrictBool | None = Field(default=None, description="Show it in the inbox.")
    email: StrictBool | None = Field(default=None, description="Send it by email.")


class SettingsIn(BaseModel):
    """Channels per notification kind; kinds and channels left out keep their setting."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kinds": {"job.completed": {"email": False}, "job.failed": {"email": True}}}
            ]
        },
    )
    kinds: dict[StrictStr, ChannelsIn] = Field(
        description="Channels by notification kind (job.completed, job.failed, ...)."
    )


WEBHOOK = {
    "url": "Where events are POSTed (http or https; private addresses are refused).",
    "event_types": "The event types sent, or * for all.",
    "description": "Free text shown with the subscription.",
    "secret": "The key its deliveries are signed with (HMAC-SHA256); made for you if left out.",
    "enabled": "true re-enables a subscription disabled after failed deliveries.",
}


@described(WEBHOOK)
class WebhookIn(BaseModel):
    """Subscribe a URL to event types (or ``*``); the secret is made for you unless given."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/jobyard",
                    "event_types": ["job.failed", "cluster.error"],
                    "description": "page the on-call person",
                }
            ]
        },
    )
    url: Annotated[StrictStr, Field(max_length=2000)]
    event_types: list[StrictStr]
    description: Annotated[StrictStr, Field(max_length=1000)] = ""
    secret: Annotated[StrictStr, Field(max_length=128)] | None = None


@described(WEBHOOK)
class WebhookPatch(Patch):
    """Change a subscription; ``enabled: true`` re-enables one that was disabled."""

    model_config = Strict
    not_null = frozenset({"url", "event_types", "description", "enabled"})
    url: Annotated[StrictStr, Field(max_length=2000)] | None = None
    event_types: list[StrictStr] | None = None
    description: Annotated[StrictStr, Field(max_length=1000)] | None = None
    secret: Annotated[StrictStr, Field(max_length=128)] | None = None
    enabled: StrictBool | None = None
