"""Webhooks: signed JSON per the Standard Webhooks convention, sent only to public addresses.

Each request carries ``webhook-id`` (the outbox key: the same on every retry, so the
receiver can drop duplicates), ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. A secret looks
like ``whsec_<base64>``; the HMAC key is the decoded part.

Server-side request forgery: before each request the host is resolved and every
address checked; loopback, link-local, private and other non-public addresses are
refused unless the admin setting allows them. The request then goes to the address
that was checked (the Host header and TLS server name keep the original host), so a
DNS answer that changes between check and connect cannot redirect it. Redirects are
not followed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Mapping

import httpx

from jobyard.domain.addresses import Address, internal_reason
from jobyard.notify.outcome import OK, Outcome

SECRET_PREFIX = "whsec_"
TOLERANCE = 300


class AddressRefused(Exception):
    """Raised when a webhook URL is malformed or points to an address that is not allowed."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "jobyard-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, got: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """Check a received request's signature and freshness (what a receiver does)."""
    msg_id = got.get("webhook-id")
    stamp = got.get("webhook-timestamp")
    signatures = got.get("webhook-signature", "")
    if not msg_id or not stamp or not (stamp.isascii() and stamp.isdigit()):
        return False
    if abs((now if now is not None else time.time()) - int(stamp)) > TOLERANCE:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, s) for s in signatures.split())


def parse(url: str) -> httpx.URL:
    """A webhook URL: http or https, with a host and no credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise AddressRefused(f"{url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise AddressRefused(f"a webhook URL starts with https:// or http://, not {url!r}")
    if not parsed.host:
        raise AddressRefused(f"the webhook URL {url!r} has no host")
    if parsed.userinfo:
        raise AddressRefused("put no credentials in the webhook URL; requests are signed")
    return parsed


async def resolve(url: httpx.URL, allow_private: bool) -> list[Address]:
    """Every address of the URL's host, checked; raises AddressRefused."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve {host!r}: {exc}") from None
        addresses = []
        for info in infos:
            raw = str(info[4][0]).split("%", 1)[0]
            address = ipaddress.ip_address(raw)
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise AddressRefused(f"{host!r} has no address")
    if not allow_private:
        for address in addresses:
            why = internal_reason(address)
            if why is not None:
                raise AddressRefused(
                    f"{host} resolves to {address}, a {why} address; webhooks go to public "
                    "addresses only unless an admin sets webhook_allow_private"
                )
    return addresses


class WebhookSender:
    """POSTs signed bodies; one connection pool for the relay's lifetime."""

    def __init__(self, allow_private: bool, timeout: float = 10.0) -> None:
        self.allow_private = allow_private
        # trust_env=False: a proxy from the environment would connect on our behalf,
        # out of reach of the address check.
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, secret: str, msg_id: str, body: bytes) -> Outcome:
        try:
            parsed = parse(url)
            addresses = await resolve(parsed, self.allow_private)
        except AddressRefused as exc:
            return Outcome(str(exc))
        pinned = parsed.copy_with(host=str(addresses[0]))
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        sent = headers(secret, msg_id, int(time.time()), body)
        sent["host"] = host_header
        try:
            response = await self.client.post(
                pinned, content=body, headers=sent, extensions={"sni_hostname": parsed.host}
            )
        except httpx.HTTPError as exc:
            return Outcome(f"{type(exc).__name__}: {exc or 'no response'} ({url})")
        if 200 <= response.status_code < 300:
            return OK
        snippet = response.text[:200].strip()
        return Outcome(
            f"HTTP {response.status_code} from {url}" + (f": {snippet}" if snippet else "")
        )
