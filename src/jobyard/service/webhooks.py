"""Webhook subscriptions (organization admins): URLs that receive signed JSON for event types.

A subscription that keeps failing is disabled by the relay with the reason recorded;
an admin fixes the receiver and enables it again, which resets the failure count.
"""

from __future__ import annotations

from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.notifications import Delivery, Subscription, check_kinds, check_statuses
from jobyard.domain.records import Page, Principal
from jobyard.notify import webhooks as hooks
from jobyard.service.context import Services
from jobyard.service.outbox import forget_subscriptions
from jobyard.store import Tx

MAX_URL = 2000


async def check_url(svc: Services, url: str) -> str:
    """A webhook URL that parses and resolves to allowed addresses (checked again per delivery)."""
    if len(url) > MAX_URL:
        raise Invalid(f"a webhook URL has at most {MAX_URL} characters", "url")
    try:
        await hooks.resolve(hooks.parse(url), svc.settings.webhook_allow_private)
    except hooks.AddressRefused as exc:
        raise Invalid(str(exc), "url") from None
    return url


def _check_secret(secret: str) -> str:
    if not secret.startswith(hooks.SECRET_PREFIX) or len(secret) < len(hooks.SECRET_PREFIX) + 24:
        raise Invalid(
            "a webhook secret looks like whsec_<base64 of 18 to 64 random bytes>; "
            "leave it out and jobyard makes one",
            "secret",
        )
    try:
        key = hooks.signing_key(secret)
    except ValueError:
        raise Invalid("the part of the secret after whsec_ is not base64", "secret") from None
    if not 18 <= len(key) <= 64:
        raise Invalid("a webhook secret holds 18 to 64 random bytes", "secret")
    return secret


async def _mine(tx: Tx, who: Principal, subscription_id: int) -> Subscription:
    sub = await tx.notify.webhooks.get(who.org_id, subscription_id)
    if sub is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    return sub


async def create_subscription(
    svc: Services,
    who: Principal,
    url: str,
    event_types: list[str],
    *,
    description: str = "",
    secret: str | None = None,
) -> Subscription:
    require(who.role, Role.ADMIN, "managing webhooks")
    kinds = check_kinds(event_types)
    url = await check_url(svc, url)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        tx.after_commit(lambda: forget_subscriptions(svc, who.org_id))
        return await tx.notify.webhooks.insert(
            {
                "org_id": who.org_id,
                "url": url,
                "secret": _check_secret(secret) if secret else hooks.new_secret(),
                "event_types": kinds,
                "description": description,
                "enabled": True,
                "consecutive_failures": 0,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )


async def list_subscriptions(svc: Services, who: Principal) -> list[Subscription]:
    require(who.role, Role.ADMIN, "managing webhooks")
    async with svc.db.read() as tx:
        return await tx.notify.webhooks.of_org(who.org_id)


async def get_subscription(svc: Services, who: Principal, subscription_id: int) -> Subscription:
    require(who.role, Role.ADMIN, "managing webhooks")
    async with svc.db.read() as tx:
        return await _mine(tx, who, subscription_id)


async def update_subscription(
    svc: Services, who: Principal, subscription_id: int, changes: dict[str, Any]
) -> Subscription:
    """Change url, event_types, description, secret or enabled. Enabling resets the failures."""
    require(who.role, Role.ADMIN, "managing webhooks")
    unknown = set(changes) - {"url", "event_types", "description", "secret", "enabled"}
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))} of a webhook subscription")
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = await check_url(svc, str(changes["url"]))
    if "event_types" in changes:
        values["event_types"] = check_kinds(list(changes["event_types"]))
    if "description" in changes:
        values["description"] = str(changes["description"])
    if "secret" in changes:
        values["secret"] = _check_secret(str(changes["secret"]))
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        sub = await _mine(tx, who, subscription_id)
        if "enabled" in changes:
            enabled = bool(changes["enabled"])
            values["enabled"] = enabled
            if enabled and not sub.enabled:
                values.update(consecutive_failures=0, disabled_reason=None, disabled_at=None)
            if not enabled and sub.enabled:
                values.update(disabled_reason=f"disabled by {who.actor}", disabled_at=now)
                await tx.notify.outbox.fail_pending_of(sub.id, "the subscription was disabled", now)
        values["updated_at"] = now
        tx.after_commit(lambda: forget_subscriptions(svc, who.org_id))
        return await tx.notify.webhooks.update(sub.id, values)


async def delete_subscription(svc: Services, who: Principal, subscription_id: int) -> None:
    """Delete a subscription and its queued and past deliveries."""
    require(who.role, Role.ADMIN, "managing webhooks")
    async with svc.db.begin() as tx:
        sub = await _mine(tx, who, subscription_id)
        await tx.notify.webhooks.delete(sub.id)
        tx.after_commit(lambda: forget_subscriptions(svc, who.org_id))


async def subscription_deliveries(
    svc: Services,
    who: Principal,
    subscription_id: int,
    *,
    statuses: list[str] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page[Delivery]:
    """A subscription's deliveries, newest first, with attempts and the last error."""
    require(who.role, Role.ADMIN, "managing webhooks")
    statuses = check_statuses(statuses)
    async with svc.db.read() as tx:
        sub = await _mine(tx, who, subscription_id)
        return await tx.notify.outbox.page(
            who.org_id, subscription_id=sub.id, statuses=statuses, offset=offset, limit=limit
        )
