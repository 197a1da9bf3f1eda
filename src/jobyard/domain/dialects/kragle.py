"""Kragle: error codes, pages of ten, and schedules as ``{once, config}``.

Every Kragle error is an HTTP 500 whose body names a numbered fault; the codes jobyard
answers, and what raises them, are in ``FAULTS``. A schedule is ``once`` (a moment,
``config.timestamp``) or recurring (``config.period`` seconds, anchored at
``config.timestamp`` when given); jobyard's cron schedules show their expression and
time zone in ``config`` too (Kragle allows more keys there).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.schedules import Schedule, ScheduleKind

PAGE_SIZE = 10

BAD_QUERY = 1
BAD_JSON = 2
BAD_LOGIN = 3
BAD_PAYLOAD = 4
NOT_FOUND = 6
STACK_EXISTS = 10
JOB_EXISTS = 12
INTERNAL = 0

# Code -> Kragle's message (API_Reference/Faults.md). jobyard appends what to fix.
FAULTS: Mapping[int, str] = {
    BAD_QUERY: "You have made a bad request - Please check your query params and try again.",
    BAD_JSON: (
        "Your request body contained invalid or inappropriate JSON - "
        "please check your request and try again."
    ),
    BAD_LOGIN: "That user does not exist or the specified password is incorrect.",
    BAD_PAYLOAD: "Your json request payload is inappropriate for the requested operation.",
    NOT_FOUND: "The specified object does not exist.",
    STACK_EXISTS: "The named Stack already exists.",
    JOB_EXISTS: "The named Job already exists.",
    INTERNAL: "The server failed; see its log.",
}

# HTTP status of a native error -> Kragle code, when the error does not name its own.
CODE_OF_STATUS: Mapping[int, int] = {
    400: BAD_JSON,
    401: BAD_LOGIN,
    403: BAD_LOGIN,
    404: NOT_FOUND,
    405: BAD_QUERY,
    409: BAD_PAYLOAD,
    413: BAD_PAYLOAD,
    422: BAD_PAYLOAD,
    429: BAD_LOGIN,
}


def code_of(status: int, named: int | None = None) -> int:
    if named is not None and named in FAULTS:
        return named
    return CODE_OF_STATUS.get(status, INTERNAL)


def message(code: int, detail: str | None) -> str:
    """Kragle's message for the code, followed by jobyard's detail when it adds one."""
    base = FAULTS.get(code, FAULTS[INTERNAL])
    if not detail or detail == base:
        return base
    return f"{base} {detail}"


def pages(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))


def _unix(value: dt.datetime) -> int:
    return int(value.timestamp())


def config_of(schedule: Schedule) -> dict[str, Any]:
    """The ``config`` object of a native schedule."""
    if schedule.kind is ScheduleKind.ONCE:
        assert schedule.at is not None
        return {"timestamp": _unix(schedule.at)}
    if schedule.kind is ScheduleKind.PERIOD:
        out: dict[str, Any] = {"period": schedule.period}
        if schedule.start is not None:
            out["timestamp"] = _unix(schedule.start)
        return out
    return {"cron": schedule.cron, "timezone": schedule.timezone}


def is_once(schedule: Schedule) -> bool:
    return schedule.kind is ScheduleKind.ONCE


_CONFIG_KEYS = {"period", "timestamp", "cron", "timezone"}


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("config.timestamp must be a Unix timestamp (seconds since 1970)", "config")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise Invalid(f"config.timestamp {value!r} is out of range", "config") from None


def schedule_from(config: Any, once: bool) -> Schedule:
    """The native schedule a Kragle ``{config, once}`` describes."""
    if not isinstance(config, dict):
        raise Invalid(
            "config must be an object: {period: seconds} or {timestamp: unix} with once",
            "config",
        )
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise Invalid(
            f"unknown key {unknown[0]!r} in config: use period, timestamp (or cron, timezone)",
            "config",
        )
    timestamp = config.get("timestamp")
    if once:
        if timestamp is None or "period" in config or "cron" in config:
            raise Invalid("a one-time schedule (once) takes config.timestamp only", "config")
        return Schedule(kind=ScheduleKind.ONCE, at=_timestamp(timestamp))
    if "cron" in config:
        if "period" in config or timestamp is not None:
            raise Invalid("a cron schedule takes config.cron and config.timezone only", "config")
        cron = config["cron"]
        zone = config.get("timezone", "UTC")
        if not isinstance(cron, str) or not isinstance(zone, str):
            raise Invalid("config.cron and config.timezone are strings", "config")
        return Schedule(kind=ScheduleKind.CRON, cron=cron, timezone=zone)
    period = config.get("period")
    if period is None:
        raise Invalid(
            "a recurring schedule needs config.period (seconds); "
            "for a one-time schedule send once: true with config.timestamp",
            "config",
        )
    if isinstance(period, bool) or not isinstance(period, int):
        raise Invalid("config.period must be a whole number of seconds", "config")
    start = _timestamp(timestamp) if timestamp is not None else None
    return Schedule(kind=ScheduleKind.PERIOD, period=period, start=start)
