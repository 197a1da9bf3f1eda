"""Retention: how long an organization keeps finished jobs and their output.

A policy keeps finished jobs ``keep_jobs_days`` days (then they go with their runs, events
and files) and their output ``keep_output_days`` days (then the stored stdout, stderr and
output files go; the job and its history stay). ``None`` keeps forever.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from jobyard.domain.errors import Invalid

MAX_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    org_id: int
    keep_jobs_days: int | None
    keep_output_days: int | None

    def jobs_before(self, now: dt.datetime) -> dt.datetime | None:
        """Finished jobs that ended before this go."""
        return now - dt.timedelta(days=self.keep_jobs_days) if self.keep_jobs_days else None

    def output_before(self, now: dt.datetime) -> dt.datetime | None:
        """Output of jobs that ended before this goes."""
        return now - dt.timedelta(days=self.keep_output_days) if self.keep_output_days else None


def check_days(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise Invalid(f"{field} is a number of days from 1 to {MAX_DAYS}, or null", field)
    return value
