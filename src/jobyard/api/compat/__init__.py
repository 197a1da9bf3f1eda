"""The platform dialects: Chef Push Jobs, Rescale, Xplenty (and more), one router each.

A dialect is a thin translator over ``service``: it parses the platform's request
shape, calls the native use case, and renders the result with the platform's words
(``domain/dialects``), ids and error shape. It owns no tables and no rules.

This module holds what the dialects share: reading loosely typed bodies the way
each platform's clients send them, and absolute URLs built from the request (as the
platforms' own servers do), so links work whatever host name the client used.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.records import Principal
from jobyard.wire.values import check_int64, unstorable


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def same_org(name: str, who: Principal) -> None:
    """An organization in the URL must be the token's own; any other does not exist."""
    if name != who.org_name:
        raise NotFound(f"organization '{name}' not found")


def decode_json(raw: bytes) -> Any:
    """A body's JSON value, refused (422) when it holds a number the database cannot."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}", "body", malformed=True) from None
    problem = unstorable(data)
    if problem is not None:
        raise Invalid(problem, "body")
    return data


async def json_object(request: Request) -> dict[str, Any]:
    """The JSON object in the body; an empty body is an empty object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object", "body", malformed=True)
    return data


def text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is required", key)
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string", key)
    return value


def integer(body: dict[str, Any], key: str, *, coerce: bool = False) -> int | None:
    """An integer; ``coerce`` also takes its decimal text (form-encoded bodies)."""
    value = body.get(key)
    if value is None or (coerce and value == ""):
        return None
    if isinstance(value, bool):
        raise Invalid(f"{key} must be a whole number", key)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif (
        coerce
        and isinstance(value, str)
        and value.strip().lstrip("-").isascii()
        and value.strip().lstrip("-").isdigit()
        and len(value.strip()) <= 40
    ):
        number = int(value.strip())
    if number is None:
        raise Invalid(f"{key} must be a whole number", key)
    try:
        return check_int64(number, key)
    except ValueError as exc:
        raise Invalid(str(exc), key) from None


def boolean(body: dict[str, Any], key: str, *, coerce: bool = False) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if coerce and isinstance(value, int):
        return value != 0
    if coerce and isinstance(value, str) and value.strip().lower() in _TRUTH:
        return _TRUTH[value.strip().lower()]
    raise Invalid(f"{key} must be true or false", key)


_TRUTH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


def string_map(body: dict[str, Any], key: str, *, coerce: bool = False) -> dict[str, str] | None:
    """A flat object of strings (environment, variables); ``coerce`` stringifies scalars."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid(f"{key} must be an object of names to strings", key)
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif coerce and isinstance(v, (int, float, bool)):
            out[str(k)] = orjson.dumps(v).decode()
        else:
            raise Invalid(f"{key}[{k}] must be a string", key)
    return out
