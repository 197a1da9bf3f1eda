"""Quorum: a count of nodes or a percentage of the target (rounded up), default 100%."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from jobyard.domain.errors import Invalid

# ASCII digits only: str.isdigit() and \d also accept "²" or "٣", which int() refuses.
_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*\Z")


@dataclass(frozen=True)
class Quorum:
    count: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if self.count is None and self.percent is None:
            object.__setattr__(self, "percent", 100.0)  # no quorum given: every node

    @classmethod
    def parse(cls, value: int | str | None) -> Quorum:
        if value is None or value == "":
            return cls(percent=100.0)
        if isinstance(value, bool):
            raise Invalid(
                "quorum must be a count such as 3 or a percentage such as '50%'", "quorum"
            )
        if isinstance(value, int):
            if value < 0:
                raise Invalid("quorum must not be negative", "quorum")
            return cls(count=value)
        if isinstance(value, str):
            text = value.strip()
            if text.isascii() and text.isdigit():
                return cls(count=int(text))
            match = _PERCENT.match(text)
            if match:
                pct = float(match.group(1))
                if pct > 100:
                    raise Invalid("a quorum percentage must be between 0% and 100%", "quorum")
                return cls(percent=pct)
        raise Invalid(
            f"quorum {value!r} is neither a count such as 3 nor a percentage such as '50%'",
            "quorum",
        )

    def required(self, targets: int) -> int:
        """How many nodes must be ready for the job to run."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.ceil(targets * self.percent / 100 - 1e-9)

    def render(self) -> str:
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        pct = int(self.percent) if self.percent.is_integer() else self.percent
        return f"{pct}%"
