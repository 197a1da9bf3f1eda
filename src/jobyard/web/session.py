"""The dashboard's session: the signed cookie ``jobyard_session`` and its CSRF token.

Signing, checking and the key are ``service/cookies`` (shared with the Kragle dialect's
log-in); this module names the dashboard's cookie and where the CSRF token travels, and
makes one codec per server.
"""

from __future__ import annotations

from jobyard.service import cookies
from jobyard.service.context import Services
from jobyard.service.cookies import KEY_FILE, MAX_AGE, Session, load_key

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "KEY_FILE",
    "MAX_AGE",
    "Session",
    "SessionCodec",
    "codec_of",
    "load_key",
]

COOKIE = "jobyard_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SessionCodec(cookies.SessionCodec):
    """The dashboard's codec: its cookie covers the whole site, SameSite=Lax."""

    def cookie_header(self, session: Session | None) -> str:
        """A ``Set-Cookie`` value that stores ``session`` (or clears the cookie for None)."""
        return self.set_cookie(COOKIE, session, path="/", same_site="Lax")


def codec_of(svc: Services) -> SessionCodec:
    """The server's codec, made on first use (so that an app that serves no dashboard
    session never touches the data directory)."""
    found = svc.runtime.codecs.get("web")
    if not isinstance(found, SessionCodec):  # the dashboard's own kind of codec
        found = svc.runtime.codecs["web"] = SessionCodec.from_settings(svc.settings)
    return found
