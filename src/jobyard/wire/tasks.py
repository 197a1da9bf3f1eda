"""Native API bodies for tasks, schedules, stacks and triggers, and for decisions and input."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.jobs import TargetIn
from jobyard.wire.values import Int64, JsonValue, Patch

Strict = ConfigDict(extra="forbid")
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=10000)]
Arguments = dict[StrictStr, JsonValue] | list[JsonValue] | None


class ArgumentIn(BaseModel):
    model_config = Strict
    name: StrictStr
    type: StrictStr = "text"
    label: StrictStr = ""
    help: StrictStr = ""
    required: StrictBool = True
    default: JsonValue = None
    options: list[StrictStr] | None = None


class TaskIn(BaseModel):
    """A task: what to run (a command, an approval, input, a notification) and its rules."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "deploy",
                    "command": "./deploy.sh",
                    "target": {"tags": ["web"]},
                    "arguments": [
                        {"name": "env", "type": "select", "options": ["staging", "prod"]}
                    ],
                    "retry": {"attempts": 3, "backoff": 30},
                    "concurrency": {"mode": "queue", "limit": 1, "queue": 10},
                }
            ]
        },
    )
    name: Name
    type: StrictStr = "script"
    description: Text = ""
    command: Annotated[StrictStr, Field(max_length=65536)] = ""
    argv: list[StrictStr] | None = None
    target: TargetIn | None = None
    quorum: Int64 | StrictStr | None = None
    run_timeout: Int64 | None = 3600
    env: dict[StrictStr, StrictStr] = {}
    dir: StrictStr | None = None
    arguments: list[ArgumentIn | StrictStr] = []
    approvers: list[Int64 | StrictStr] = []
    approve_label: StrictStr = "Approve"
    reject_label: StrictStr = "Reject"
    allow_self_approval: StrictBool = False
    message: Text = ""
    recipients: list[Int64 | StrictStr] = []
    cancellable: StrictBool = True
    hold_timeout: Int64 | None = None
    retry: dict[StrictStr, JsonValue] | None = None
    concurrency: dict[StrictStr, JsonValue] | StrictStr | None = None


class TaskPatch(Patch):
    """Change a task: fields left out stay as they are."""

    model_config = Strict
    not_null = frozenset(
        {
            "name",
            "description",
            "command",
            "env",
            "arguments",
            "approvers",
            "approve_label",
            "reject_label",
            "allow_self_approval",
            "message",
            "recipients",
            "cancellable",
        }
    )
    name: Name | None = None
    description: Text | None = None
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    argv: list[StrictStr] | None = None
    target: TargetIn | None = None
    quorum: Int64 | StrictStr | None = None
    run_timeout: Int64 | None = None
    env: dict[StrictStr, StrictStr] | None = None
    dir: StrictStr | None = None
    arguments: list[ArgumentIn | StrictStr] | None = None
    approvers: list[Int64 | StrictStr] | None = None
    approve_label: StrictStr | None = None
    reject_label: StrictStr | None = None
    allow_self_approval: StrictBool | None = None
    message: Text | None = None
    recipients: list[Int64 | StrictStr] | None = None
    cancellable: StrictBool | None = None
    hold_timeout: Int64 | None = None
    retry: dict[StrictStr, JsonValue] | None = None
    concurrency: dict[StrictStr, JsonValue] | StrictStr | None = None


class RunIn(BaseModel):
    """Run a task: argument values by name (or by position), optionally elsewhere."""

    model_config = Strict
    arguments: Arguments = None
    target: TargetIn | None = None
    stack_id: Int64 | None = None


class ArgumentsIn(BaseModel):
    """Argument values by name, or a list by position (TheEye's ``args`` is accepted too)."""

    model_config = Strict
    arguments: Arguments = None
    args: list[JsonValue] | None = None


class DecisionIn(BaseModel):
    model_config = Strict
    comment: Annotated[StrictStr, Field(max_length=2000)] | None = None


class ScheduleIn(BaseModel):
    """Timing: a cron expression (with a time zone), a period in seconds, or one moment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "weekdays-9", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
                {"period": 300},
                {"at": "2026-06-01T08:00:00Z"},
            ]
        },
    )
    name: Name | None = None
    kind: StrictStr | None = None
    cron: StrictStr | None = None
    timezone: StrictStr | None = None
    period: Int64 | None = None
    start: dt.datetime | None = None
    at: dt.datetime | None = None


class StackIn(BaseModel):
    """A stack: where (target, env) and what: one task or command, or a chain of steps.

    A step is ``{task: id or name, arguments, target?, on_failure?: stop|continue, name?}``;
    an argument value may read the previous step's output: ``${previous.stdout}`` or
    ``${previous.output.NAME}``.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "release",
                    "target": {"nodes": ["build1"]},
                    "steps": [
                        {"task": "build"},
                        {"task": "test", "arguments": {"version": "${previous.stdout}"}},
                        {"task": "ship", "arguments": ["${previous.output.version}"]},
                    ],
                    "on_failure": {"task": "page-oncall"},
                }
            ]
        },
    )
    name: Name
    description: Text = ""
    target: TargetIn
    env: dict[StrictStr, StrictStr] = {}
    task_id: Int64 | None = None
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    # Checked by the stack rules (domain.chains), which name the wrong step.
    steps: list[JsonValue] | None = None
    on_failure: dict[StrictStr, JsonValue] | None = None
    public: StrictBool = False


class StackPatch(Patch):
    model_config = Strict
    not_null = frozenset({"name", "description", "target", "env", "public"})
    name: Name | None = None
    description: Text | None = None
    target: TargetIn | None = None
    env: dict[StrictStr, StrictStr] | None = None
    task_id: Int64 | None = None
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    steps: list[JsonValue] | None = None
    on_failure: dict[StrictStr, JsonValue] | None = None
    public: StrictBool | None = None


class TriggerIn(BaseModel):
    """A task or a stack on a schedule."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-deploy",
                    "schedule_id": 1,
                    "task_id": 1,
                    "arguments": {"env": "staging"},
                    "overlap": "forbid",
                    "catch_up": "once",
                }
            ]
        },
    )
    name: Name | None = None
    schedule_id: Int64
    task_id: Int64 | None = None
    stack_id: Int64 | None = None
    enabled: StrictBool = True
    overlap: dict[StrictStr, JsonValue] | StrictStr | None = None
    catch_up: StrictStr = "once"
    catch_up_window: Int64 = 3600
    arguments: Arguments = None


class TriggerPatch(Patch):
    model_config = Strict
    not_null = frozenset({"schedule_id", "enabled", "catch_up", "catch_up_window"})
    name: Name | None = None
    schedule_id: Int64 | None = None
    task_id: Int64 | None = None
    stack_id: Int64 | None = None
    enabled: StrictBool | None = None
    overlap: dict[StrictStr, JsonValue] | StrictStr | None = None
    catch_up: StrictStr | None = None
    catch_up_window: Int64 | None = None
    arguments: Arguments = None
