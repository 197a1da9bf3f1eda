"""What a channel reports for one message it tried to send."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """How one send went: ``error`` is None on success; ``permanent`` failures are not retried."""

    error: str | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


OK = Outcome()
