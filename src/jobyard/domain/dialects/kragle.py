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
import re
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
BAD_BLOCK_EXTRA = 11
JOB_EXISTS = 12
NO_SUCH_BLOCK = 22
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
    BAD_BLOCK_EXTRA: 'The Stack contained a Block with invalid "extra" args.',
    JOB_EXISTS: "The named Job already exists.",
    NO_SUCH_BLOCK: "You passed a non-existent Block type in your list of Blocks for a Stack.",
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


# -- blocks: a Kragle block names a jobyard task; its conversion is the task's arguments

# A replacement marker: \x01\x01/path\x02\x02 (or single \x01 ... \x02), a path into the
# output of the block above.
_MARKER = re.compile(r"\x01\x01?(/[^\x01\x02]*)\x02\x02?")
_BLOCK_OPTIONS = {"name", "state", "target", "on_failure"}


def _native_reference(match: re.Match[str]) -> str:
    path = match.group(1).strip("/")
    if path in ("", "stdout"):
        return "${previous.stdout}"
    return "${previous.output." + path.replace("/", ".") + "}"


def conversion_in(value: Any) -> Any:
    """A block's conversion specifier as native argument values (markers become
    ``${previous...}`` references)."""
    if isinstance(value, str):
        return _MARKER.sub(_native_reference, value)
    if isinstance(value, dict):
        return {k: conversion_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [conversion_in(v) for v in value]
    return value


_NATIVE = re.compile(r"\$\{previous\.(stdout|output\.([^}]+))\}")


def conversion_out(value: Any) -> Any:
    """Native argument values shown as a Kragle conversion specifier."""
    if isinstance(value, str):
        return _NATIVE.sub(
            lambda m: (
                "\x01\x01/" + ("stdout" if m.group(1) == "stdout" else m.group(2)) + "\x02\x02"
            ),
            value,
        )
    if isinstance(value, dict):
        return {k: conversion_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [conversion_out(v) for v in value]
    return value


def steps_from_blocks(blocks: Any) -> list[dict[str, Any]]:
    """Native steps (``{task, arguments, ...}``) from Kragle's ``blocks``:
    ``[[block name, conversion, {name, state}], ...]``."""
    if not isinstance(blocks, list) or not blocks:
        raise Invalid("blocks is a non-empty list of [block name, conversion, {options}]", "blocks")
    steps: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, list) or not 1 <= len(block) <= 3:
            raise Invalid(
                f"blocks[{i}] is an array: [block name, conversion, {{options}}]", "blocks"
            )
        name = block[0]
        if not isinstance(name, str) or not name:
            raise Invalid(f"blocks[{i}][0] is the name of a block (a jobyard task)", "blocks")
        conversion = block[1] if len(block) > 1 else None
        if conversion is not None and not isinstance(conversion, (dict, list)):
            raise Invalid(
                f"blocks[{i}][1]: a conversion is an object of the task's arguments "
                "(or a list of their values)",
                "blocks",
            )
        step: dict[str, Any] = {"task": name, "arguments": conversion_in(conversion)}
        if len(block) == 3:
            options = block[2]
            if not isinstance(options, dict):
                raise Invalid(f"blocks[{i}][2] is an object of options", "blocks", kragle_code=11)
            unknown = sorted(set(options) - _BLOCK_OPTIONS)
            if unknown:
                raise Invalid(
                    f"unknown option {unknown[0]!r} in blocks[{i}][2]: use name or state",
                    "blocks",
                    kragle_code=11,
                )
            for key in ("name", "target", "on_failure"):
                if key in options:
                    step[key] = options[key]
        steps.append(step)
    return steps
