"""Schedules: when something runs. A cron expression in a time zone, a fixed period, or one moment.

Every schedule answers one question, ``next_after(t)``: the first fire time strictly after
the instant ``t``, or None when it never fires again. ``next_times(n, after)`` repeats it.

Cron expressions have five fields (minute hour day month weekday) or six with seconds
first (``*/10 * * * * *`` = every ten seconds), plus ``@hourly``-style names. They match
the local wall-clock time of the schedule's zone. Daylight-saving changes follow the
rules of Vixie cron, so that neither a daily job nor an every-minute job surprises:

- **Expressions that fire every hour** (hour field ``*``) follow elapsed time: in the
  repeated hour of autumn they fire in both passes, and the hour skipped in spring simply
  does not exist.
- **Expressions with fixed hours** follow the wall clock: a time skipped in spring (02:30
  when clocks jump from 02:00 to 03:00) fires once at the moment of the jump; a time that
  happens twice in autumn fires only the first time.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from jobyard.domain.errors import Invalid

_EPS = dt.timedelta(microseconds=1)
_SECOND = dt.timedelta(seconds=1)
# The largest DST shift on Earth is 2 hours (Troll station); search a little wider.
_MAX_SHIFT = dt.timedelta(hours=3)
MIN_PERIOD = 1
MAX_PERIOD = 366 * 24 * 3600


class ScheduleKind(StrEnum):
    CRON = "cron"
    PERIOD = "period"
    ONCE = "once"


def zone(name: str) -> ZoneInfo:
    """The time zone of that IANA name, or Invalid."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'",
            "timezone",
        ) from None


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_local`` walks naive wall-clock times."""

    expression: str
    seconds: bool
    hourly: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        return _parse_cron(" ".join(expression.split()))

    def next_local(self, after: dt.datetime) -> dt.datetime:
        """The first matching naive wall-clock time strictly after ``after``."""
        it = _iterator(self.expression, self.seconds)
        it.set_current(after, force=True)
        result: dt.datetime = it.get_next(dt.datetime)
        return result


@functools.lru_cache(maxsize=4096)
def _parse_cron(expression: str) -> Cron:
    fields = expression.split()
    if not fields:
        raise Invalid("a cron expression is empty", "cron")
    seconds = len(fields) == 6
    if len(fields) not in (1, 5, 6) or (len(fields) == 1 and not fields[0].startswith("@")):
        raise Invalid(
            f"cron {expression!r} needs 5 fields (minute hour day month weekday), "
            "6 with seconds first, or a name such as @hourly",
            "cron",
        )
    try:
        if not croniter.is_valid(expression, second_at_beginning=seconds):
            raise ValueError(expression)
        expanded, _ = croniter.expand(expression, second_at_beginning=seconds)
    except (ValueError, KeyError, TypeError):
        raise Invalid(f"cron {expression!r} is not a valid cron expression", "cron") from None
    return Cron(expression, seconds, hourly=expanded[1] == ["*"])


@functools.lru_cache(maxsize=4096)
def _iterator(expression: str, seconds: bool) -> Any:
    # One reusable iterator per expression: parsing costs ~10x a step.
    return croniter(expression, dt.datetime(2000, 1, 1), second_at_beginning=seconds)


def _offset(tz: ZoneInfo, instant: dt.datetime) -> dt.timedelta:
    off = instant.astimezone(tz).utcoffset()
    assert off is not None
    return off


def _wall(instant: dt.datetime, off: dt.timedelta) -> dt.datetime:
    """The naive local time of ``instant`` under a fixed offset."""
    return (instant + off).replace(tzinfo=None)


def _instant(wall: dt.datetime, off: dt.timedelta) -> dt.datetime:
    return (wall - off).replace(tzinfo=dt.UTC)


def _transition(tz: ZoneInfo, lo: dt.datetime, hi: dt.datetime) -> dt.datetime | None:
    """The first instant in (lo, hi] whose UTC offset differs from lo's, to the second."""
    base = _offset(tz, lo)
    if _offset(tz, hi) == base:
        return None
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp()) + 1
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset(tz, dt.datetime.fromtimestamp(mid, dt.UTC)) == base:
            lo_s = mid
        else:
            hi_s = mid
    return dt.datetime.fromtimestamp(hi_s, dt.UTC)


def cron_next(cron: Cron, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first instant strictly after ``after`` matching ``cron`` in ``tz`` (see module doc)."""
    t = after.astimezone(dt.UTC)
    off = _offset(tz, t)
    floor = _wall(t, off)  # match walls strictly after this one
    inclusive = False
    if not cron.hourly:
        # In the second pass of a repeated hour, fixed-hour walls fired in the first pass.
        back = _transition(tz, t - _MAX_SHIFT, t)
        if back is not None:
            before = _offset(tz, back - _SECOND)
            if before > off and floor < _wall(back, before):
                floor, inclusive = _wall(back, before), True
    for _ in range(16):  # each round crosses one offset change; 16 is far more than needed
        wall = cron.next_local(floor - _EPS if inclusive else floor)
        candidate = _instant(wall, off)
        change = _transition(tz, t, candidate) if candidate > t else None
        if change is None:
            return candidate
        new = _offset(tz, change)
        old_wall_at_change = _wall(change, off)
        new_wall_at_change = _wall(change, new)
        if new > off:  # spring forward: walls in [old, new) do not exist today
            if not cron.hourly and wall < new_wall_at_change:
                return change
            floor, inclusive = new_wall_at_change, True
        elif cron.hourly:  # autumn, elapsed time: the repeated walls match again
            floor, inclusive = new_wall_at_change, True
        else:  # autumn, wall clock: the repeated walls fired in the first pass
            floor, inclusive = old_wall_at_change, True
        t, off = change, new
    raise Invalid(f"cron {cron.expression!r} found no next time in {tz.key}", "cron")


@dataclass(frozen=True)
class Schedule:
    """Reusable timing. Exactly the fields of its kind are set."""

    kind: ScheduleKind
    cron: str | None = None
    timezone: str = "UTC"
    period: int | None = None
    start: dt.datetime | None = None  # the anchor of a period (its first fire)
    at: dt.datetime | None = None  # the moment of a one-time schedule

    def __post_init__(self) -> None:
        if self.kind is ScheduleKind.CRON:
            if not self.cron:
                raise Invalid("a cron schedule needs a cron expression", "cron")
            Cron.parse(self.cron)
            zone(self.timezone)
        elif self.kind is ScheduleKind.PERIOD:
            if self.period is None or isinstance(self.period, bool):
                raise Invalid("a periodic schedule needs a period in seconds", "period")
            if not MIN_PERIOD <= self.period <= MAX_PERIOD:
                raise Invalid(
                    f"period is in seconds, between {MIN_PERIOD} and {MAX_PERIOD}", "period"
                )
            _aware(self.start, "start")
        elif self.kind is ScheduleKind.ONCE:
            if self.at is None:
                raise Invalid("a one-time schedule needs the moment 'at'", "at")
            _aware(self.at, "at")
        else:  # pragma: no cover - StrEnum guards this
            raise Invalid(f"unknown schedule kind {self.kind!r}", "kind")

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after ``after``; None when there is none."""
        if self.kind is ScheduleKind.CRON:
            assert self.cron is not None
            return cron_next(Cron.parse(self.cron), zone(self.timezone), after)
        if self.kind is ScheduleKind.PERIOD:
            assert self.period is not None
            anchor = self.start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            if after < anchor:
                return anchor
            elapsed = (after - anchor).total_seconds()
            steps = int(elapsed // self.period) + 1
            return anchor + dt.timedelta(seconds=steps * self.period)
        assert self.at is not None
        return self.at if self.at > after else None

    def next_times(self, n: int, after: dt.datetime) -> list[dt.datetime]:
        """Up to ``n`` fire times after ``after``, in order."""
        out: list[dt.datetime] = []
        t: dt.datetime | None = after
        while len(out) < n and t is not None:
            t = self.next_after(t)
            if t is not None:
                out.append(t)
        return out

    def slots_between(
        self, first: dt.datetime, until: dt.datetime, cap: int
    ) -> tuple[list[dt.datetime], dt.datetime | None, bool]:
        """Fire times ``first <= s <= until`` (``first`` is a fire time), at most ``cap``;
        the first fire time after ``until`` (None when there is none); and whether ``cap``
        left some out."""
        out: list[dt.datetime] = []
        s: dt.datetime | None = first
        while s is not None and s <= until:
            if len(out) == cap:
                return out, self.next_after(until), True
            out.append(s)
            s = self.next_after(s)
        return out, s, False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is ScheduleKind.CRON:
            out.update(cron=self.cron, timezone=self.timezone)
        elif self.kind is ScheduleKind.PERIOD:
            out.update(period=self.period, start=self.start)
        else:
            out.update(at=self.at)
        return out


def _aware(value: dt.datetime | None, name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise Invalid(f"{name} needs a time zone, e.g. 2026-01-31T12:00:00Z", name)
