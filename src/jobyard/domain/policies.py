"""Policies, as pure decisions: retry with backoff, concurrency and overlap, catch-up after
downtime, and a failure budget for anonymous callers.

Concurrency (per task) and overlap (per trigger) share one vocabulary::

    allow    start another run, however many are running
    forbid   refuse (a task answers 409; a trigger skips the slot and records why)
    replace  stop the running ones, then start
    queue    wait for a free slot, at most ``queue`` runs waiting (then refuse)
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobyard.domain.errors import Invalid

MAX_ATTEMPTS = 100
MAX_BACKOFF = 7 * 24 * 3600
MAX_QUEUE = 10_000


def _int(data: dict[str, Any], key: str, default: int, low: int, high: int, field: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{field}.{key} must be a whole number from {low} to {high}", field)
    return value


def _number(
    data: dict[str, Any], key: str, default: float, low: float, high: float, field: str
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise Invalid(f"{field}.{key} must be a number from {low:g} to {high:g}", field)
    return float(value)


def _known(data: Any, keys: set[str], field: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Invalid(f"{field} must be an object", field)
    unknown = sorted(set(data) - keys)
    if unknown:
        raise Invalid(
            f"unknown key {unknown[0]!r} in {field}: use {', '.join(sorted(keys))}", field
        )
    return data


@dataclass(frozen=True)
class RetryPolicy:
    """Run up to ``attempts`` times in all; wait ``backoff * factor**(n-1)`` seconds, at most
    ``max_backoff``, before attempt n+1."""

    attempts: int = 1
    backoff: float = 10.0
    factor: float = 2.0
    max_backoff: float = 3600.0

    @classmethod
    def from_json(cls, data: Any) -> RetryPolicy:
        d = _known(data, {"attempts", "backoff", "factor", "max_backoff"}, "retry")
        return cls(
            attempts=_int(d, "attempts", 1, 1, MAX_ATTEMPTS, "retry"),
            backoff=_number(d, "backoff", 10.0, 0, MAX_BACKOFF, "retry"),
            factor=_number(d, "factor", 2.0, 1, 10, "retry"),
            max_backoff=_number(d, "max_backoff", 3600.0, 0, MAX_BACKOFF, "retry"),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "factor": self.factor,
            "max_backoff": self.max_backoff,
        }

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based); None: no more tries."""
        if attempt >= self.attempts:
            return None
        return min(self.backoff * self.factor ** (attempt - 1), self.max_backoff)


class Concurrency(StrEnum):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"
    QUEUE = "queue"


class Admission(StrEnum):
    """What to do with a new run."""

    START = "start"
    QUEUE = "queue"
    REFUSE = "refuse"
    REPLACE = "replace"  # stop the oldest running ones, then start


@dataclass(frozen=True)
class ConcurrencyPolicy:
    """At most ``limit`` runs at once (for forbid, replace and queue); ``queue`` runs may wait."""

    mode: Concurrency = Concurrency.ALLOW
    limit: int = 1
    queue: int = 10

    @classmethod
    def from_json(cls, data: Any, field: str = "concurrency") -> ConcurrencyPolicy:
        if isinstance(data, str):
            data = {"mode": data}
        d = _known(data, {"mode", "limit", "queue"}, field)
        mode = d.get("mode", "allow")
        if mode not in Concurrency.__members__.values():
            raise Invalid(
                f"{field}.mode {mode!r} is unknown: use one of {', '.join(Concurrency)}", field
            )
        return cls(
            mode=Concurrency(mode),
            limit=_int(d, "limit", 1, 1, 10_000, field),
            queue=_int(d, "queue", 10, 0, MAX_QUEUE, field),
        )

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "limit": self.limit, "queue": self.queue}

    def admit(self, running: int, waiting: int) -> Admission:
        """Decide for one new run, given how many run and wait now."""
        if self.mode is Concurrency.ALLOW or (running < self.limit and waiting == 0):
            return Admission.START
        if self.mode is Concurrency.FORBID:
            return Admission.REFUSE
        if self.mode is Concurrency.REPLACE:
            return Admission.REPLACE
        return Admission.QUEUE if waiting < self.queue else Admission.REFUSE

    def may_release(self, running: int) -> bool:
        """Whether a waiting run may start now."""
        return self.mode is Concurrency.ALLOW or running < self.limit


def on_busy_nodes(policies: list[ConcurrencyPolicy]) -> Admission:
    """What a trigger's run does when a node of its target is running another job: under
    ``forbid`` the slot is skipped, under ``queue`` and ``replace`` the run waits until the
    nodes are free (it replaces only runs of its own task or trigger), under ``allow`` it
    starts (and a node with no free slot answers busy)."""
    modes = {p.mode for p in policies}
    if Concurrency.FORBID in modes:
        return Admission.REFUSE
    if modes & {Concurrency.QUEUE, Concurrency.REPLACE}:
        return Admission.QUEUE
    return Admission.START


def busy_words(occupied: dict[str, int], shown: int = 5) -> str:
    """``web1 (job 12), web2 (job 12)``: the busy nodes and what they run, a few of them."""
    items = sorted(occupied.items())
    words = ", ".join(f"{node} (job {job})" for node, job in items[:shown])
    return words + (f" and {len(items) - shown} more" if len(items) > shown else "")


class CatchUp(StrEnum):
    """What a trigger does with the slots it missed while the scheduler was down."""

    SKIP = "skip"  # record them as missed, fire none
    ONCE = "once"  # fire once for the latest missed slot
    ALL = "all"  # fire every missed slot within the window


@dataclass(frozen=True)
class SlotPlan:
    fire: list[dt.datetime]
    missed: list[dt.datetime]


def plan_slots(
    due: list[dt.datetime],
    now: dt.datetime,
    *,
    grace: float,
    catch_up: CatchUp,
    window: float,
) -> SlotPlan:
    """Split due slots (oldest first) into those to fire and those missed.

    A slot at most ``grace`` seconds old is merely late: it fires. Older slots were missed
    (the scheduler was down or far behind) and follow the catch-up policy.
    """
    late_limit = now - dt.timedelta(seconds=grace)
    on_time = [s for s in due if s >= late_limit]
    old = [s for s in due if s < late_limit]
    if catch_up is CatchUp.SKIP or not old:
        return SlotPlan(fire=on_time, missed=old)
    if catch_up is CatchUp.ONCE:
        if on_time:  # the on-time run is the one run after the downtime
            return SlotPlan(fire=on_time, missed=old)
        return SlotPlan(fire=[old[-1]], missed=old[:-1])
    window_start = now - dt.timedelta(seconds=window)
    kept = [s for s in old if s >= window_start]
    return SlotPlan(fire=kept + on_time, missed=[s for s in old if s < window_start])


class FailureBudget:
    """At most ``limit`` failures per ``window`` seconds per key; past it, callers wait.

    In memory and per process: it slows down guessing, it is not an accounting system.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            if len(self._failures) >= self.max_keys:
                self._failures.clear()
            q = self._failures[key] = deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds the caller must wait before trying again, or None when it may try now."""
        q = self._recent(key, now)
        if len(q) < self.limit:
            return None
        return max(0.0, q[0] + self.window - now)

    def fail(self, key: str, now: float) -> None:
        self._recent(key, now).append(now)


class Backoff:
    """Per key (an account, a task, a stack): after ``free`` failures, every attempt waits
    ``base * 2**(failures - free)`` seconds (at most ``cap``) before it is checked.

    It slows a guesser down without refusing anyone: the right password or secret still
    works, after the wait. Failures are forgotten ``window`` seconds after the last one, or
    at the next success. In memory and per process, like FailureBudget.
    """

    def __init__(
        self,
        free: int = 5,
        base: float = 1.0,
        cap: float = 30.0,
        window: float = 900.0,
        max_keys: int = 100_000,
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)

    def failures(self, key: str, now: float) -> int:
        count, last = self._failures.get(key, (0, now))
        if now - last > self.window:
            self._failures.pop(key, None)
            return 0
        return count

    def delay(self, key: str, now: float) -> float:
        """Seconds this attempt waits before it is checked (0 while under ``free``)."""
        over = self.failures(key, now) - self.free
        if over < 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(over, 64))

    def fail(self, key: str, now: float) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.clear()
        self._failures[key] = (self.failures(key, now) + 1, now)

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)
