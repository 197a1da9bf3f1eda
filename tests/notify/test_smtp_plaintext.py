"""An SMTP password is never sent in clear unless the operator opts in
(``JOBYARD_SMTP_TLS=none`` with a password: a warning at start, and no login)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from email.message import EmailMessage, Message
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from jobyard.api.app import _warn_smtp_in_clear
from jobyard.notify import email as mail
from jobyard.settings import Settings
from tests.notify.receivers import _Handler, free_port


class AuthServer:
    """aiosmtpd that accepts AUTH without TLS and records the passwords it was sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.passwords: list[bytes] = []
        self.messages: list[EmailMessage] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.passwords.append(data.password)
        return AuthResult(success=True)

    async def __aenter__(self) -> AuthServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                _Handler(self.messages),
                hostname="smtp.test",
                authenticator=self.authenticate,
                auth_require_tls=False,
            ),
            "127.0.0.1",
            self.port,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[AuthServer]:
    async with AuthServer() as s:
        yield s


def _message() -> Message:
    return mail.build(
        sender="jobyard@example.com",
        to="a@example.com",
        title="t",
        text="x",
        url="http://x",
        msg_id="",
    )


async def test_no_password_in_clear_without_the_opt_in(server: AuthServer) -> None:
    config = mail.SmtpConfig(host="127.0.0.1", port=server.port, user="relay", password="s3cret")
    [outcome] = await mail.EmailSender(config).send_many([_message()])
    assert not outcome.ok and "in clear" in (outcome.error or "")
    assert server.passwords == [] and server.messages == []


async def test_the_opt_in_sends_it(server: AuthServer) -> None:
    config = mail.SmtpConfig(
        host="127.0.0.1",
        port=server.port,
        user="relay",
        password="s3cret",
        allow_plaintext_auth=True,
    )
    [outcome] = await mail.EmailSender(config).send_many([_message()])
    assert outcome.ok, outcome.error
    assert server.passwords == [b"s3cret"] and len(server.messages) == 1


def test_a_warning_at_start(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(smtp_host="mail", smtp_user="relay", smtp_password="s3cret")
    with caplog.at_level(logging.WARNING, logger="jobyard"):
        _warn_smtp_in_clear(settings)
        _warn_smtp_in_clear(settings.replace(smtp_tls="starttls"))
    [record] = caplog.records
    assert "in clear" in record.getMessage() and "NOT sent" in record.getMessage()
