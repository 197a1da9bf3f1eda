"""Who is asking: a token from any of the accepted places, turned into a Principal.

Accepted: ``Authorization: Bearer T``, ``Authorization: Token T``, HTTP Basic with
T as the user name (with or without a colon), the ``access_token`` query parameter,
and the dashboard's session cookie.

Scopes: an agent credential (a token or Chef key with the ``agent`` role) is only an
agent. ``principal`` refuses it (403) everywhere; the few routes an agent needs (its
WebSocket, input-file downloads, TheEye's agent routes) depend on ``agent_principal``
instead, which admits agents as well as people. Every other way in (Kragle, Chef
signatures) passes its principal through ``admit``: the one place this rule lives.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from starlette.requests import HTTPConnection

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Forbidden, Unauthenticated
from jobyard.domain.records import Principal
from jobyard.service import accounts
from jobyard.service.context import Services


def token_from(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme in ("bearer", "token"):
            return value
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("the Basic credential is not valid base64") from None
            user, _, password = decoded.partition(":")
            return user or password
        raise Unauthenticated(f"unsupported authorization scheme {scheme!r}: use Bearer")
    return request.query_params.get("access_token")


def services_of(request: HTTPConnection) -> Services:
    svc: Services = request.app.state.services
    return svc


async def services(request: Request) -> Services:
    """FastAPI dependency: the composed services. ``async`` because FastAPI runs a plain
    ``def`` dependency in its thread pool: a thread hop on every request for an attribute."""
    return services_of(request)


AGENT_ONLY = (
    "an agent token only acts as an agent (its WebSocket, its jobs' input files, "
    "TheEye agent routes): use a person's token for this"
)


def admit(who: Principal, *, agent: bool = False) -> Principal:
    """The caller, if its credential's scope covers the route: an agent credential only
    where the route is for agents (``agent=True``), or Forbidden."""
    if who.role is Role.AGENT and not agent:
        raise Forbidden(AGENT_ONLY)
    return who


async def authenticate(svc: Services, secret: str, *, agent: bool = False) -> Principal:
    """A presented token's principal, within its scope (see ``admit``)."""
    return admit(await accounts.authenticate(svc, secret), agent=agent)


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated person, or 401; an agent credential, 403."""
    return admit(await _caller(request))


async def agent_principal(request: Request) -> Principal:
    """FastAPI dependency for the routes an agent uses: a person or an agent, or 401."""
    return admit(await _caller(request), agent=True)


async def _caller(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    secret = token_from(request)
    svc = services_of(request)
    if secret:
        who = await accounts.authenticate(svc, secret)
    else:
        session = getattr(request.state, "session_principal", None)
        if session is None:
            raise Unauthenticated(
                "this needs a token: send 'Authorization: Bearer <token>' "
                "(create one with `jobyard admin create-token`)"
            )
        who = session
    request.state.principal = who
    return who
