"""Signed session cookies and the CSRF tokens tied to them.

Both the dashboard (``web/session``) and the Kragle dialect's log-in (``POST
/compat/kragle/authenticate``) keep who signed in this way, each in a cookie of its own.
The cookie holds only ``{sid, issued}`` as base64url JSON followed by an HMAC-SHA256 of it.
``sid`` is random per sign-in (a visitor who has not signed in gets an anonymous session so
a sign-in form is protected too); who signed in, and in which organization, is a row on the
server found by the sid (``service/sessions``), so a copied cookie stops working at
sign-out. The CSRF token is an HMAC of ``sid``, so it is valid only with the cookie it was
issued for and changes at every sign-in.

The key comes from ``Settings.session_secret`` (set it when several replicas serve the
same users), else from ``<data_dir>/session.key``, generated once (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

from jobyard.service.keyfiles import read_or_create
from jobyard.settings import Settings

MAX_AGE = 14 * 24 * 3600
KEY_FILE = "session.key"


@dataclass(frozen=True)
class Session:
    sid: str
    issued: int
    user_id: int | None = None
    org: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None and self.org is not None

    def for_org(self, org: str) -> Session:
        return replace(self, org=org)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes, *, max_age: int = MAX_AGE, secure: bool = False) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.max_age = max_age
        self.secure = secure

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        secure = settings.public_url.lower().startswith("https://")
        if settings.session_secret:
            return cls(settings.session_secret.encode(), secure=secure)
        return cls(load_key(settings.data_dir), secure=secure)

    def _mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._key, f"{purpose}|{data}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def anonymous(self) -> Session:
        return Session(sid=secrets.token_urlsafe(18), issued=int(time.time()))

    def dumps(self, session: Session) -> str:
        body = {"s": session.sid, "t": session.issued}  # who signed in is on the server
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac('session', payload)}"

    def loads(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(sid=str(body["s"]), issued=int(body["t"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.issued + self.max_age < time.time():
            return None
        return session

    def seal(self, purpose: str, body: dict[str, Any]) -> str:
        """``body`` as a cookie value signed for ``purpose`` (readable, not forgeable), with
        the time it was sealed."""
        payload = _b64(json.dumps({**body, "_t": int(time.time())}).encode())
        return f"{payload}.{self._mac(purpose, payload)}"

    def unseal(self, purpose: str, value: str | None, max_age: int) -> dict[str, Any] | None:
        """What ``seal`` put in ``value``; None if it is missing, forged or older than
        ``max_age`` seconds."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            sealed = int(body.pop("_t"))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return None
        return body if isinstance(body, dict) and sealed + max_age >= time.time() else None

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(session))

    def set_cookie(
        self, name: str, session: Session | None, *, path: str = "/", same_site: str = "Lax"
    ) -> str:
        """A ``Set-Cookie`` value that stores ``session`` in the cookie ``name`` (or clears
        it for None): HttpOnly, and Secure when the server is reached over https."""
        if session is None:
            return self.cookie(name, "", 0, path=path, same_site=same_site)
        return self.cookie(name, self.dumps(session), self.max_age, path=path, same_site=same_site)

    def cookie(
        self, name: str, value: str, max_age: int, *, path: str = "/", same_site: str = "Lax"
    ) -> str:
        """A ``Set-Cookie`` value: HttpOnly, Secure when the server is reached over https."""
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly"]
        parts.append(f"SameSite={same_site}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def load_key(data_dir: Path) -> bytes:
    """The key in ``data_dir/session.key``, created on first use; readable by us only."""
    text = read_or_create(data_dir / KEY_FILE, lambda: secrets.token_bytes(32).hex())
    return bytes.fromhex(text.strip())
