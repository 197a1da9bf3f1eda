"""Native API: webhook subscriptions of the organization (admins).

GET/POST           /api/v1/webhooks
GET/PATCH/DELETE   /api/v1/webhooks/{id}
GET                /api/v1/webhooks/{id}/deliveries   (status=failed ...)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import IdPath
from jobyard.api.notifications import delivery_json
from jobyard.api.responses import JSON, iso
from jobyard.domain.notifications import ALL_KINDS, WEBHOOK_KINDS, Subscription
from jobyard.domain.records import Principal
from jobyard.service import webhooks as uc
from jobyard.service.context import Services
from jobyard.wire.notifications import WebhookIn, WebhookPatch

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def subscription_json(s: Subscription, base_url: str) -> dict[str, Any]:
    return {
        "id": s.id,
        "url": s.url,
        "event_types": s.event_types,
        "description": s.description,
        "enabled": s.enabled,
        # Admins need the secret to verify signatures; only admins read subscriptions.
        "secret": s.secret,
        "consecutive_failures": s.consecutive_failures,
        "disabled_reason": s.disabled_reason,
        "disabled_at": iso(s.disabled_at),
        "last_success_at": iso(s.last_success_at),
        "last_failure_at": iso(s.last_failure_at),
        "created_by": s.created_by,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "deliveries_url": f"{base_url}/api/v1/webhooks/{s.id}/deliveries",
    }


@router.get("/event-types", summary="The event types a subscription may name")
async def event_types(who: Who) -> Response:
    return JSON({"event_types": list(WEBHOOK_KINDS), "all": ALL_KINDS})


@router.get("", summary="Webhook subscriptions (admin)")
async def list_all(who: Who, svc: Svc) -> Response:
    base = svc.settings.base_url
    return JSON([subscription_json(s, base) for s in await uc.list_subscriptions(svc, who)])


@router.post("", status_code=201, summary="Subscribe a URL to event types (admin)")
async def create(body: WebhookIn, who: Who, svc: Svc) -> Response:
    sub = await uc.create_subscription(
        svc, who, body.url, body.event_types, description=body.description, secret=body.secret
    )
    return JSON(
        subscription_json(sub, svc.settings.base_url),
        status_code=201,
        headers={"Location": f"/api/v1/webhooks/{sub.id}"},
    )


@router.get("/{subscription_id}", summary="One webhook subscription (admin)")
async def get(subscription_id: IdPath, who: Who, svc: Svc) -> Response:
    sub = await uc.get_subscription(svc, who, subscription_id)
    return JSON(subscription_json(sub, svc.settings.base_url))


@router.patch(
    "/{subscription_id}",
    summary="Change a subscription; enabled=true re-enables a disabled one (admin)",
)
async def patch(subscription_id: IdPath, body: WebhookPatch, who: Who, svc: Svc) -> Response:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    sub = await uc.update_subscription(svc, who, subscription_id, changes)
    return JSON(subscription_json(sub, svc.settings.base_url))


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription (admin)")
async def delete(subscription_id: IdPath, who: Who, svc: Svc) -> Response:
    await uc.delete_subscription(svc, who, subscription_id)
    return Response(status_code=204)


@router.get("/{subscription_id}/deliveries", summary="A subscription's deliveries (admin)")
async def deliveries(
    request: Request,
    subscription_id: IdPath,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 50,
    status: Annotated[str | None, Query(description="comma-separated: failed,pending")] = None,
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    found = await uc.subscription_deliveries(
        svc, who, subscription_id, statuses=statuses, offset=offset, limit=limit
    )
    return JSON(render.paginated(request, found, page, limit, delivery_json))
