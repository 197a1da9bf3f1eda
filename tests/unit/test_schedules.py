"""Schedules: cron with time zones (including DST changes), fixed periods, one moment."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from jobyard.domain.clock import FakeClock
from jobyard.domain.errors import Invalid
from jobyard.domain.schedules import Schedule, ScheduleKind

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def cron(expr: str, tz: str = "UTC") -> Schedule:
    return Schedule(ScheduleKind.CRON, cron=expr, timezone=tz)


def local(times: list[dt.datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M:%S%z") for t in times]


def test_cron_every_minute_in_utc() -> None:
    start = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    times = cron("* * * * *").next_times(3, start)
    assert times == [
        dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 2, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 3, tzinfo=UTC),
    ]


def test_next_is_strictly_after() -> None:
    exact = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert cron("0 9 * * *").next_after(exact) == exact + dt.timedelta(days=1)


def test_seconds_field_comes_first() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    times = cron("*/20 * * * * *").next_times(4, start)
    assert [t.second for t in times] == [20, 40, 0, 20]


def test_named_expressions() -> None:
    start = dt.datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert cron("@hourly").next_after(start) == dt.datetime(2026, 1, 1, 11, tzinfo=UTC)


def test_time_zone_is_applied() -> None:
    start = dt.datetime(2026, 1, 15, tzinfo=UTC)
    nine_paris = cron("0 9 * * *", "Europe/Paris").next_after(start)
    assert nine_paris == dt.datetime(2026, 1, 15, 8, tzinfo=UTC)  # CET is UTC+1 in winter
    summer = cron("0 9 * * *", "Europe/Paris").next_after(dt.datetime(2026, 7, 1, tzinfo=UTC))
    assert summer == dt.datetime(2026, 7, 1, 7, tzinfo=UTC)  # CEST is UTC+2


def test_spring_forward_fixed_time_fires_once_at_the_jump() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT in New York: 02:30 does not exist that day.
    times = cron("30 2 * * *", "America/New_York").next_times(
        3, dt.datetime(2026, 3, 7, 12, tzinfo=UTC)
    )
    assert local(times, NY) == [
        "03-08 03:00:00-0400",
        "03-09 02:30:00-0400",
        "03-10 02:30:00-0400",
    ]


def test_spring_forward_hourly_skips_the_missing_hour() -> None:
    times = cron("*/30 * * * *", "America/New_York").next_times(
        4, dt.datetime(2026, 3, 8, 6, 15, tzinfo=UTC)
    )
    assert local(times, NY) == [
        "03-08 01:30:00-0500",
        "03-08 03:00:00-0400",
        "03-08 03:30:00-0400",
        "03-08 04:00:00-0400",
    ]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {dt.timedelta(minutes=30)}  # elapsed time never jumps


def test_fall_back_fixed_time_fires_once() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice; a daily job runs once.
    times = cron("30 1 * * *", "America/New_York").next_times(
        3, dt.datetime(2026, 10, 31, 12, tzinfo=UTC)
    )
    assert local(times, NY) == [
        "11-01 01:30:00-0400",
        "11-02 01:30:00-0500",
        "11-03 01:30:00-0500",
    ]


def test_fall_back_from_inside_the_repeated_hour() -> None:
    # Asked during the second pass (01:10 EST), the 01:30 of today already fired.
    after = dt.datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    assert local([cron("30 1 * * *", "America/New_York").next_after(after)], NY) == [  # type: ignore[list-item]
        "11-02 01:30:00-0500"
    ]


def test_fall_back_hourly_fires_in_both_passes() -> None:
    times = cron("*/20 * * * *", "America/New_York").next_times(
        7, dt.datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    )
    assert local(times, NY) == [
        "11-01 01:20:00-0400",
        "11-01 01:40:00-0400",
        "11-01 01:00:00-0500",
        "11-01 01:20:00-0500",
        "11-01 01:40:00-0500",
        "11-01 02:00:00-0500",
        "11-01 02:20:00-0500",
    ]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {dt.timedelta(minutes=20)}


def test_europe_dst_with_fake_clock_walk() -> None:
    """Walk a FakeClock across the 2026 spring change in Paris: an hourly job at :00 never
    fires twice and never stalls; 02:00 local does not exist on 2026-03-29."""
    clock = FakeClock(dt.datetime(2026, 3, 28, 22, 30, tzinfo=UTC))
    schedule = cron("0 * * * *", "Europe/Paris")
    fired: list[dt.datetime] = []
    nxt = schedule.next_after(clock.now())
    while len(fired) < 5:
        assert nxt is not None
        clock.set(nxt)
        fired.append(clock.now())
        nxt = schedule.next_after(clock.now())
    assert local(fired, PARIS) == [
        "03-29 00:00:00+0100",
        "03-29 01:00:00+0100",
        "03-29 03:00:00+0200",
        "03-29 04:00:00+0200",
        "03-29 05:00:00+0200",
    ]


def test_period_is_anchored() -> None:
    anchor = dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    s = Schedule(ScheduleKind.PERIOD, period=60, start=anchor)
    assert s.next_after(dt.datetime(2025, 1, 1, tzinfo=UTC)) == anchor
    assert s.next_after(anchor) == anchor + dt.timedelta(seconds=60)
    assert s.next_after(anchor + dt.timedelta(seconds=61)) == anchor + dt.timedelta(seconds=120)
    unanchored = Schedule(ScheduleKind.PERIOD, period=60)
    assert unanchored.next_after(anchor) == dt.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_once() -> None:
    at = dt.datetime(2026, 5, 1, 12, tzinfo=UTC)
    s = Schedule(ScheduleKind.ONCE, at=at)
    assert s.next_times(5, dt.datetime(2026, 1, 1, tzinfo=UTC)) == [at]
    assert s.next_after(at) is None


def test_slots_between_caps() -> None:
    s = Schedule(ScheduleKind.PERIOD, period=1)
    first = dt.datetime(2026, 1, 1, tzinfo=UTC)
    slots, after, more = s.slots_between(first, first + dt.timedelta(seconds=9), cap=100)
    assert len(slots) == 10 and not more and after == first + dt.timedelta(seconds=10)
    slots, after, more = s.slots_between(first, first + dt.timedelta(seconds=9), cap=10)
    assert len(slots) == 10 and not more
    slots, after, more = s.slots_between(first, first + dt.timedelta(seconds=9), cap=4)
    assert len(slots) == 4 and more and after == first + dt.timedelta(seconds=10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": ScheduleKind.CRON, "cron": "61 * * * *"}, "cron"),
        ({"kind": ScheduleKind.CRON, "cron": "* * *"}, "cron"),
        ({"kind": ScheduleKind.CRON, "cron": ""}, "cron"),
        ({"kind": ScheduleKind.CRON, "cron": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"kind": ScheduleKind.PERIOD, "period": 0}, "period"),
        ({"kind": ScheduleKind.PERIOD}, "period"),
        ({"kind": ScheduleKind.ONCE}, "at"),
        ({"kind": ScheduleKind.ONCE, "at": dt.datetime(2026, 1, 1)}, "at"),
    ],
)
def test_invalid_schedules_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as err:
        Schedule(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field
