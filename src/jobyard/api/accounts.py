"""Native accounts API: who am I, tokens, members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from jobyard.api.auth import agent_principal, principal, services
from jobyard.api.ids import IdPath
from jobyard.api.responses import JSON, iso
from jobyard.domain.accounts import parse_role
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Member, Principal, Token
from jobyard.service import accounts as uc
from jobyard.service.context import Services
from jobyard.wire.accounts import MemberIn, TokenIn

router = APIRouter(prefix="/api/v1", tags=["accounts"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def _token(t: Token) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "role": t.role,
        "user_id": t.user_id,
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "revoked_at": iso(t.revoked_at),
        "last_used_at": iso(t.last_used_at),
    }


def _member(m: Member) -> dict[str, Any]:
    return {
        "id": m.user_id,
        "email": m.email,
        "display_name": m.display_name,
        "role": m.role.value,
        "created_at": iso(m.created_at),
    }


@router.get("/me", summary="The caller: user, organization and role (agents too)")
async def me(who: Annotated[Principal, Depends(agent_principal)]) -> Response:
    return JSON(
        {
            "user": {"id": who.user_id, "email": who.email, "display_name": who.display_name},
            "organization": {"id": who.org_id, "name": who.org_name},
            "role": who.role.value,
        }
    )


@router.get("/tokens", summary="API tokens (yours; admins see all)")
async def list_tokens(who: Who, svc: Svc) -> Response:
    return JSON([_token(t) for t in await uc.my_tokens(svc, who)])


@router.post("/tokens", status_code=201, summary="Create a token; the secret is shown once")
async def create_token(body: TokenIn, who: Who, svc: Svc) -> Response:
    role = parse_role(body.role) if body.role else None
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Invalid("expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z", "expires_at")
    issued = await uc.new_token(svc, who, body.name, role, body.expires_at, body.email)
    return JSON({**_token(issued.token), "token": issued.secret}, status_code=201)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token")
async def revoke_token(token_id: IdPath, who: Who, svc: Svc) -> Response:
    await uc.revoke_token(svc, who, token_id)
    return Response(status_code=204)


@router.get("/members", summary="Members of the organization")
async def list_members(who: Who, svc: Svc) -> Response:
    return JSON([_member(m) for m in await uc.list_members(svc, who)])


@router.post("/members", status_code=201, summary="Add a member or change their role (admin)")
async def set_member(body: MemberIn, who: Who, svc: Svc) -> Response:
    member = await uc.set_member(
        svc, who, body.email, parse_role(body.role), body.display_name, body.password
    )
    return JSON(_member(member), status_code=201)


@router.delete("/members/{user_id}", status_code=204, summary="Remove a member (admin)")
async def remove_member(user_id: IdPath, who: Who, svc: Svc) -> Response:
    await uc.remove_member(svc, who, user_id)
    return Response(status_code=204)
