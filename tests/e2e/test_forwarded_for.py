"""A real ``jobyard serve`` believes X-Forwarded-For only from JOBYARD_TRUSTED_PROXIES:
by default a client cannot escape the per-address sign-in limit by changing the header."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Server

pytestmark = pytest.mark.e2e

PATH = "/compat/kragle/authenticate"


def _guesses(c: httpx.Client, via: str | None) -> list[int]:
    """Eleven wrong sign-ins, each for another email (no account backoff) and, when
    ``via`` is a format, each claiming another forwarded address."""
    codes = []
    for n in range(11):
        headers = {"X-Forwarded-For": via.format(n)} if via else {}
        r = c.post(PATH, json={"email": f"u{n}@acme.test", "password": "guess"}, headers=headers)
        codes.append(r.status_code)
    return codes


def test_forwarded_for_from_an_untrusted_peer_is_ignored(server: Server) -> None:
    with server.client() as c:
        assert _guesses(c, "198.51.100.{}") == [500] * 10 + [429]


def test_a_trusted_proxy_forwards_each_clients_address(tmp_path: Path) -> None:
    with (
        Server(tmp_path / "server", env={"JOBYARD_TRUSTED_PROXIES": "127.0.0.1/32"}) as server,
        server.client() as c,
    ):
        assert _guesses(c, "198.51.100.{}") == [500] * 11  # eleven clients, one guess each
        assert _guesses(c, None) == [500] * 10 + [429]  # the proxy's own address is counted
