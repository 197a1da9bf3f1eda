"""A credential that stops working reaches the live connections it opened.

Revoking a token, or changing the role of its user or removing them from the
organization, is published on hub topics (carried to the other replicas by the bridge):

    revoked:token:<token id>           one token
    revoked:user:<org id>:<user id>    every token (and session) of a user in one organization

A live agent connection or event stream listens on the topics of the principal that
opened it (``watch``) and ends when one is published: the client reconnects and is
authenticated afresh, or is refused. Nothing here decides who may do what.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from jobyard.domain.records import Principal
from jobyard.service.context import Services

PREFIX = "revoked:"


def topics_of(who: Principal) -> list[str]:
    """The topics on which a change of ``who``'s credentials is published."""
    out = [f"{PREFIX}user:{who.org_id}:{who.user_id}"]
    if who.token_id is not None:
        out.append(f"{PREFIX}token:{who.token_id}")
    return out


def credentials_changed(
    svc: Services, org_id: int, *, user_id: int | None = None, token_id: int | None = None
) -> None:
    """Tell live connections (on every replica) that these credentials changed.

    Call after the change has committed, so that a reconnect authenticates against it.
    """
    message = {"revoked": True, "org": org_id, "user": user_id, "token": token_id}
    if user_id is not None:
        svc.hub.publish(f"{PREFIX}user:{org_id}:{user_id}", message)
    if token_id is not None:
        svc.hub.publish(f"{PREFIX}token:{token_id}", message)


def is_revocation(message: Any) -> bool:
    return isinstance(message, dict) and message.get("revoked") is True


@contextlib.asynccontextmanager
async def watch(svc: Services, who: Principal | None, *topics: str) -> AsyncIterator[Any]:
    """Subscribe to ``topics`` and to the revocation topics of ``who`` in one queue."""
    extra = topics_of(who) if who is not None else []
    async with svc.hub.subscribe(*topics, *extra) as queue:
        yield queue
