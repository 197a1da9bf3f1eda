"""Who is asking: a token from any of the accepted places, turned into a Principal.

Accepted: ``Authorization: Bearer T``, ``Authorization: Token T``, HTTP Basic with
T as the user name (with or without a colon), the ``access_token`` query parameter,
and the dashboard's session cookie.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from starlette.requests import HTTPConnection

from jobyard.domain.errors import Unauthenticated
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


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller, or 401."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    secret = token_from(request)
    svc = services(request)
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
