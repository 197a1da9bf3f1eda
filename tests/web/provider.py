"""A real OpenID Connect provider for sign-in tests: PyPI ``oidc-provider-mock`` run as its
own HTTP server process (``python -m oidc_provider_mock``) on a free loopback port.

It accepts any client id and secret and any redirect URI; ``set_user`` gives a subject
the claims its ID token will carry; its authorization form takes the subject (``sub``)
and answers with a redirect to the client's callback. It requires a nonce here.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import httpx

from tests.e2e.procs import Listening


class Provider(Listening):
    name = "oidc-provider"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--require-nonce",
        ]

    def ready(self) -> bool:
        try:
            got = httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=1.0)
        except httpx.HTTPError:
            return False
        return got.status_code == 200

    def set_user(self, sub: str, **claims: Any) -> None:
        """The claims the provider vouches for when ``sub`` signs in."""
        done = httpx.put(f"{self.url}/users/{quote(sub, safe='')}", json=claims, timeout=10.0)
        assert done.status_code == 204, done.text
