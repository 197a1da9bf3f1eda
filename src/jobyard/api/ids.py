"""Object ids in URLs: decimal integers that both databases can hold (64-bit, signed).

A bigger number, or one written with non-ASCII digits ("²", "٣"), is bad input (4xx),
never a driver overflow (500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from jobyard.domain.errors import Invalid

MAX_ID = 2**63 - 1

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="an object id")]


def is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID


def parse_id(text: str, field: str, what: str) -> int:
    """``text`` as an id, or Invalid naming ``field``."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ID):
        raise Invalid(f"{text!r} is not {what} id", field)
    return int(text)
