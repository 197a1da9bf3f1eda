"""Definitions as files: the format ``jobyard apply`` reads and ``jobyard export`` writes.

One document (YAML or TOML) holds lists of tasks, schedules, stacks, triggers and webhooks.
Each entry is the body the native API takes to create it, except that references are by
name instead of id (``task``, ``stack``, ``schedule`` in a trigger; ``task`` in a stack).
Every entry has a name (a webhook is known by its URL). The JSON Schema of the format is
``Definitions.model_json_schema()`` (``jobyard export --schema``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.notifications import WebhookIn
from jobyard.wire.tasks import TRIGGER, Arguments, Name, ScheduleIn, StackIn, TaskIn
from jobyard.wire.values import Int64, JsonValue, described

KINDS = ("schedules", "tasks", "stacks", "triggers", "webhooks")


class TaskDef(TaskIn):
    """A task, as ``POST /api/v1/tasks`` takes it."""


class ScheduleDef(ScheduleIn):
    """A schedule, as ``POST /api/v1/schedules`` takes it, with a name."""

    name: Name = Field(description="The schedule's name: triggers name it.")


class StackDef(StackIn):
    """A stack, as ``POST /api/v1/stacks`` takes it; ``task`` names its one task."""

    task: Name | None = Field(default=None, description="The name of the task it runs.")


@described(
    {
        **TRIGGER,
        "schedule": "The name of the schedule whose slots it fires.",
        "task": "The name of the task it runs.",
        "stack": "The name of the stack it runs, or runs its task on.",
    }
)
class TriggerDef(BaseModel):
    """A trigger: a task or a stack on a schedule, each named."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    schedule: Name
    task: Name | None = None
    stack: Name | None = None
    enabled: StrictBool = True
    overlap: dict[StrictStr, JsonValue] | StrictStr | None = None
    catch_up: StrictStr = "once"
    catch_up_window: Int64 = 3600
    arguments: Arguments = None


class WebhookDef(WebhookIn):
    """A webhook subscription, known by its URL (its secret is never exported)."""


class Definitions(BaseModel):
    """A file of definitions."""

    model_config = ConfigDict(extra="forbid", title="jobyard definitions")
    schedules: list[ScheduleDef] = Field(default_factory=list, description="Schedules.")
    tasks: list[TaskDef] = Field(default_factory=list, description="Tasks.")
    stacks: list[StackDef] = Field(default_factory=list, description="Stacks.")
    triggers: list[TriggerDef] = Field(default_factory=list, description="Triggers.")
    webhooks: list[WebhookDef] = Field(
        default_factory=list, description="Webhook subscriptions, known by URL."
    )


def key_of(kind: str, item: dict[str, Any]) -> str:
    """What identifies a definition of ``kind``: its name, or a webhook's URL."""
    return str(item["url"] if kind == "webhooks" else item["name"])
