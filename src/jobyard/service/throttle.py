"""Slowing down guessers of passwords and secrets, by address and by account.

Two limits apply to every sign-in and every anonymous trigger:

- per client address, a FailureBudget: past ``ADDRESS_LIMIT`` failures a minute, the
  address gets 429 (Retry-After) until the window passes. The address is the peer's, or
  the one a trusted proxy forwarded (``JOBYARD_TRUSTED_PROXIES``): a client cannot pick it.
- per account (the email, the task, the stack), a Backoff: past a few failures, every
  attempt on that account waits, doubling up to ``Backoff.cap``, before it is checked; the
  right password or secret still succeeds after the wait, so an attacker spreading guesses
  over many addresses is slowed without locking the owner out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from jobyard.domain.errors import RateLimited
from jobyard.domain.policies import Backoff, FailureBudget
from jobyard.service.context import Services

ADDRESS_LIMIT = 10
ADDRESS_WINDOW = 60.0
_sleep = asyncio.sleep  # the wait of a backed-off attempt (tests record it instead)


def budget(svc: Services, name: str) -> FailureBudget:
    """The per-address budget of one kind of attempt (``sessions``, ``hooks``)."""
    found = svc.runtime.failures.get(name)
    if found is None:
        found = svc.runtime.failures[name] = FailureBudget(
            limit=ADDRESS_LIMIT, window=ADDRESS_WINDOW
        )
    return found


def backoff(svc: Services, name: str) -> Backoff:
    """The per-account backoff of one kind of attempt."""
    return svc.runtime.backoffs.setdefault(name, Backoff())


@dataclass(frozen=True)
class Attempt:
    """One attempt let through; say how it went."""

    svc: Services
    name: str
    client: str
    account: str | None
    at: float

    def failed(self) -> None:
        budget(self.svc, self.name).fail(self.client, self.at)
        if self.account is not None:
            backoff(self.svc, self.name).fail(self.account, time.monotonic())

    def succeeded(self) -> None:
        if self.account is not None:
            backoff(self.svc, self.name).succeed(self.account)


async def attempt(
    svc: Services, name: str, *, client: str, account: str | None, what: str
) -> Attempt:
    """Let one attempt through: 429 when ``client`` has spent its budget, else after the
    account's backoff (never refused for the account's sake)."""
    now = time.monotonic()
    wait = budget(svc, name).retry_after(client, now)
    if wait is not None:
        raise RateLimited(
            f"too many failed {what} from this address; retry in {wait:.0f} s",
            retry_after=max(1, round(wait)),
        )
    if account is not None:
        delay = backoff(svc, name).delay(account, now)
        if delay > 0:
            await _sleep(delay)
    return Attempt(svc, name, client, account, now)
