"""Stacks (a named target with environment) and triggers (a task or stack on a schedule)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobyard.domain.chains import Step
from jobyard.domain.policies import CatchUp, ConcurrencyPolicy
from jobyard.domain.schedules import Schedule
from jobyard.domain.targets import Target

DEFAULT_CATCH_UP_WINDOW = 3600
MAX_CATCH_UP_WINDOW = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class SavedSchedule:
    id: int
    org_id: int
    name: str | None
    schedule: Schedule
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Stack:
    """Where and with what environment something runs; optionally what (a task or a command)."""

    id: int
    org_id: int
    name: str
    description: str
    target: Target
    env: dict[str, str]
    task_id: int | None
    command: str | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    steps: tuple[Step, ...] = ()
    on_failure: Step | None = None
    webhook: str | None = None
    webhook_method: str | None = None
    webhook_hash: str | None = None
    webhook_prefix: str | None = None
    public: bool = False

    @property
    def chained(self) -> bool:
        """Whether the stack runs a chain of steps (not its one task or command)."""
        return bool(self.steps)


@dataclass(frozen=True, slots=True)
class Trigger:
    id: int
    org_id: int
    name: str | None
    task_id: int | None
    stack_id: int | None
    schedule_id: int
    enabled: bool
    overlap: ConcurrencyPolicy
    catch_up: CatchUp
    catch_up_window: int
    arguments: Any
    do_del: bool
    next_fire_at: dt.datetime | None
    last_slot: dt.datetime | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


class FireOutcome(StrEnum):
    FIRED = "fired"  # a job was created for the slot
    SKIPPED = "skipped"  # the overlap policy (or an error) kept the slot from running
    DELETED = "deleted"  # the trigger was queued for deletion and went at this slot


@dataclass(frozen=True, slots=True)
class Fire:
    id: int
    trigger_id: int
    org_id: int
    slot_time: dt.datetime
    outcome: FireOutcome
    job_id: int | None
    reason: str | None
    created_at: dt.datetime
