"""Native API bodies for tasks, schedules, stacks and triggers, and for decisions and input."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.jobs import JOB, TargetIn
from jobyard.wire.values import Int64, JsonValue, Patch, described

Strict = ConfigDict(extra="forbid")
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=10000)]
Arguments = dict[StrictStr, JsonValue] | list[JsonValue] | None

ARGUMENT = {
    "name": "The argument's name: $NAME in the command, JOBYARD_ARG_<NAME> in its environment.",
    "type": "text, number, boolean, select, date, email, json or file.",
    "label": "How a form labels it.",
    "help": "A hint shown under it in a form.",
    "required": "Whether a run must give it (else its default, or nothing).",
    "default": "Its value when a run gives none.",
    "options": "The choices of a select.",
    "secret": "Whether its values are secret: stored encrypted, shown as ••••, masked in the "
    "output, given to the command in its environment (a shell command reads "
    '"$JOBYARD_ARG_<NAME>").',
}

ARGUMENT_VALUES = "Argument values by name, or a list by position."

TASK = {
    **{k: JOB[k] for k in ("command", "argv", "quorum", "env", "secret_env", "dir", "description")},
    "name": "The task's name, unique in the organization.",
    "type": "script (runs a command), approval, input or notification.",
    "target": "Where its runs go by default: {nodes, cluster, tags, count}.",
    "run_timeout": "Seconds a node may run the command before it is killed.",
    "arguments": "Its arguments: objects, or names (text, required).",
    "approvers": "Who may decide an approval: user ids or emails.",
    "approve_label": "The approve button's words.",
    "reject_label": "The reject button's words.",
    "allow_self_approval": "Whether the person who asked may approve.",
    "message": "A notification's text.",
    "recipients": "Who a notification goes to: user ids or emails.",
    "cancellable": "Whether a non-admin may stop its runs.",
    "hold_timeout": "Seconds an approval or input waits before it times out (null: for ever).",
    "retry": "Retry policy: {attempts, backoff, factor, max_backoff}.",
    "concurrency": "Concurrency policy: allow, forbid, replace or queue, or {mode, limit, queue}; "
    "a trigger's run also waits for (queue) or skips (forbid) nodes busy with another job.",
}

SCHEDULE = {
    "name": "The schedule's name, unique in the organization.",
    "kind": "cron, period or once (found from the fields given when left out).",
    "cron": "A cron expression: five fields, or six with seconds first.",
    "timezone": "The IANA time zone of the cron expression (default UTC).",
    "period": "Seconds between slots.",
    "start": "The first slot of a period (ISO 8601; default: now).",
    "at": "The one moment of a once schedule (ISO 8601).",
}

STACK = {
    "name": "The stack's name, unique in the organization.",
    "description": "Free text shown with the stack.",
    "target": "Where it runs: {nodes, cluster, tags, count}.",
    "env": "Environment variables for every run.",
    "secret_env": JOB["secret_env"],
    "task_id": "The task it runs (or give command, or steps).",
    "command": "A shell command it runs itself, without a task.",
    "steps": "A chain: steps run one after the other ({task, arguments, target, on_failure}).",
    "on_failure": "A step run when a step of the chain fails.",
    "public": "Whether its webhook runs it without a token.",
}

TRIGGER = {
    "name": "The trigger's name, unique in the organization.",
    "schedule_id": "The schedule whose slots it fires.",
    "task_id": "The task it runs.",
    "stack_id": "The stack it runs, or runs its task on.",
    "enabled": "Whether it fires.",
    "overlap": "Its overlap policy with its own earlier runs: allow, forbid, replace, queue, or "
    "{mode, limit, queue}.",
    "catch_up": "What to do with slots missed while no scheduler ran: skip, once or all.",
    "catch_up_window": "How far back (seconds) catch_up all fires missed slots.",
    "arguments": ARGUMENT_VALUES,
}


@described(ARGUMENT)
class ArgumentIn(BaseModel):
    model_config = Strict
    name: StrictStr
    type: StrictStr = "text"
    label: StrictStr = ""
    help: StrictStr = ""
    required: StrictBool = True
    default: JsonValue = None
    options: list[StrictStr] | None = None
    secret: StrictBool = False


@described(TASK)
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
    secret_env: dict[StrictStr, StrictStr] = {}
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


@described(TASK)
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
    secret_env: dict[StrictStr, StrictStr] | None = None
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
    arguments: Arguments = Field(
        default=None, description=ARGUMENT_VALUES, examples=[{"env": "staging"}]
    )
    target: TargetIn | None = Field(
        default=None, description="Run it here instead of the task's target."
    )
    stack_id: Int64 | None = Field(
        default=None, description="Run it on this stack (its target and environment)."
    )


class ArgumentsIn(BaseModel):
    """Argument values by name, or a list by position (TheEye's ``args`` is accepted too)."""

    model_config = Strict
    arguments: Arguments = Field(default=None, description=ARGUMENT_VALUES)
    args: list[JsonValue] | None = Field(
        default=None, description="Values by position (TheEye's word)."
    )


class DecisionIn(BaseModel):
    model_config = Strict
    comment: Annotated[StrictStr, Field(max_length=2000)] | None = Field(
        default=None, description="Why, kept with the decision.", examples=["checked with ops"]
    )


@described(SCHEDULE)
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


@described(STACK)
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
    secret_env: dict[StrictStr, StrictStr] = {}
    task_id: Int64 | None = None
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    # Checked by the stack rules (domain.chains), which name the wrong step.
    steps: list[JsonValue] | None = None
    on_failure: dict[StrictStr, JsonValue] | None = None
    public: StrictBool = False


@described(STACK)
class StackPatch(Patch):
    model_config = Strict
    not_null = frozenset({"name", "description", "target", "env", "public"})
    name: Name | None = None
    description: Text | None = None
    target: TargetIn | None = None
    env: dict[StrictStr, StrictStr] | None = None
    secret_env: dict[StrictStr, StrictStr] | None = None
    task_id: Int64 | None = None
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    steps: list[JsonValue] | None = None
    on_failure: dict[StrictStr, JsonValue] | None = None
    public: StrictBool | None = None


@described(TRIGGER)
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


@described(TRIGGER)
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
