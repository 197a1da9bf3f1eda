"""Chef identities of the caller's organization (admins): the keys Chef clients sign with."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.domain.accounts import parse_role
from jobyard.domain.records import ChefKey, Principal
from jobyard.service import chef_keys as uc
from jobyard.service.context import Services
from jobyard.wire.accounts import ChefKeyIn

router = APIRouter(prefix="/api/v1", tags=["accounts"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def chef_key_json(k: ChefKey) -> dict[str, Any]:
    return {
        "name": k.name,
        "email": k.email,
        "role": k.role,
        "public_key": k.public_key,
        "fingerprint": uc.fingerprint(k.public_key),
        "created_at": iso(k.created_at),
    }


@router.get("/chef-keys", summary="Chef user and client names that may sign requests")
async def list_chef_keys(who: Who, svc: Svc) -> Response:
    return JSON([chef_key_json(k) for k in await uc.list_keys_as(svc, who)])


@router.post(
    "/chef-keys",
    status_code=201,
    summary="Register a Chef name and its public key, or make a pair (private key shown once)",
)
async def add_chef_key(body: ChefKeyIn, who: Who, svc: Svc) -> Response:
    role = parse_role(body.role) if body.role is not None else None
    added = await uc.add_key_as(
        svc, who, body.name, body.email, public_key=body.public_key, role=role
    )
    out = chef_key_json(added.key)
    if added.private_key is not None:
        out["private_key"] = added.private_key
    return JSON(out, status_code=201)


@router.delete("/chef-keys/{name}", status_code=204, summary="Forget a Chef name and its key")
async def remove_chef_key(name: str, who: Who, svc: Svc) -> Response:
    await uc.remove_key_as(svc, who, name)
    return Response(status_code=204)
