"""Email through SMTP (aiosmtplib): plain text and HTML, one connection per batch.

The outbox key becomes the Message-ID, so a message re-sent after a crash carries the
same id and mail clients and servers can recognize the duplicate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from jobyard.notify.outcome import OK, Outcome

# SMTP reply codes from 500 up mean "do not try this message again".
PERMANENT_FROM = 500


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    tls: str = "none"  # none | starttls | tls
    user: str = ""
    password: str = ""
    sender: str = "jobyard@localhost"
    timeout: float = 30.0


def message_id(key: str, domain: str) -> str:
    """A stable Message-ID for an outbox key."""
    safe = "".join(c if c.isalnum() or c in ".-_" else "-" for c in key)
    return f"<jobyard.{safe}@{domain}>"


def build(
    *,
    sender: str,
    to: str,
    title: str,
    text: str,
    url: str,
    msg_id: str,
    name: str = "",
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = " ".join(title.split())  # a header never spans lines
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = msg_id or make_msgid()
    msg["Auto-Submitted"] = "auto-generated"
    greeting = f"Hello {name},\n\n" if name else ""
    msg.set_content(f"{greeting}{text}\n\nOpen it: {url}\n\n-- \njobyard\n")
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    hello = f"<p>Hello {html.escape(name)},</p>" if name else ""
    msg.add_alternative(
        "<!doctype html><html><body>"
        f"{hello}{paragraphs}"
        f'<p><a href="{html.escape(url, quote=True)}">Open it in jobyard</a></p>'
        '<p style="color:#777">-- jobyard</p>'
        "</body></html>\n",
        subtype="html",
    )
    return msg


class EmailSender:
    """Sends a batch of messages over one SMTP connection."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.tls == "tls",
            start_tls=c.tls == "starttls",
            timeout=c.timeout,
        )

    async def send_many(self, messages: list[EmailMessage]) -> list[Outcome]:
        if not messages:
            return []
        smtp = self._client()
        try:
            await smtp.connect()
            if self.config.user:
                await smtp.login(self.config.user, self.config.password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            reason = f"cannot reach the SMTP server {self.config.host}:{self.config.port}: {exc}"
            if smtp.is_connected:
                smtp.close()
            return [Outcome(reason)] * len(messages)
        outcomes: list[Outcome] = []
        try:
            for msg in messages:
                outcomes.append(await self._send_one(smtp, msg))
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        return outcomes

    async def _send_one(self, smtp: aiosmtplib.SMTP, msg: EmailMessage) -> Outcome:
        if not smtp.is_connected:
            return Outcome("the SMTP server closed the connection")
        try:
            errors, _ = await smtp.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = all(code >= PERMANENT_FROM for code in codes)
            return Outcome(f"recipient refused: {exc}", permanent)
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(f"SMTP {exc.code}: {exc.message}", exc.code >= PERMANENT_FROM)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(f"SMTP error: {exc}")
        except ValueError as exc:  # an address that cannot go on an SMTP command line
            return Outcome(str(exc), permanent=True)
        if errors:
            return Outcome(f"recipient refused: {errors}", True)
        return OK
