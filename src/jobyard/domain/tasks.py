"""Tasks: reusable definitions of what to run, and the arguments a run takes.

A task has a type:

    script        a command on a target; its runs are ordinary jobs
    input         a script whose job waits ``onhold`` until a person gives its arguments
    approval      no command: the job waits ``onhold`` until an approver decides
    notification  no command: the job records a message for people and completes

Arguments are declared in order (name, type, required, default); a run's values are
checked against them and passed to the command as positional arguments in that order
(as TheEye does) and as ``JOBYARD_ARG_<NAME>`` environment variables.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.policies import ConcurrencyPolicy, RetryPolicy
from jobyard.domain.quorum import Quorum
from jobyard.domain.secrets import MASK, is_sealed
from jobyard.domain.targets import Target

_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_TASK_NAME_MAX = 200
MAX_ARGUMENTS = 100
MAX_TEXT = 65_536
MAX_FILE_REF = 1_048_576
MAX_HOLD = 30 * 24 * 3600


class TaskType(StrEnum):
    SCRIPT = "script"
    INPUT = "input"
    APPROVAL = "approval"
    NOTIFICATION = "notification"

    @property
    def runs_command(self) -> bool:
        return self in (TaskType.SCRIPT, TaskType.INPUT)


class ArgType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    SELECT = "select"
    DATE = "date"
    FILE = "file"


@dataclass(frozen=True)
class Argument:
    """One declared argument."""

    name: str
    type: ArgType = ArgType.TEXT
    label: str = ""
    help: str = ""
    required: bool = True
    default: Any = None
    options: tuple[str, ...] = ()
    # A secret's values (and default) are stored sealed, shown as MASK, masked in output,
    # and given to the command in its environment only (JOBYARD_ARG_<NAME>).
    secret: bool = False

    def __post_init__(self) -> None:
        where = f"arguments.{self.name}"
        if not isinstance(self.name, str) or not _ARG_NAME.match(self.name):
            raise Invalid(
                f"argument name {self.name!r} must start with a letter or '_' and use "
                "letters, digits, '_', '.', '-' (at most 64)",
                "arguments",
            )
        if self.type is ArgType.SELECT:
            if not self.options:
                raise Invalid(f"argument {self.name!r} is a select: give its options", where)
            if len(set(self.options)) != len(self.options):
                raise Invalid(f"argument {self.name!r} lists an option twice", where)
        elif self.options:
            raise Invalid(f"only select arguments have options ({self.name!r} is a {self.type})")
        if self.default is not None and not (self.secret and _kept(self.default)):
            object.__setattr__(self, "default", self.check(self.default))

    @property
    def env_name(self) -> str:
        return "JOBYARD_ARG_" + re.sub(r"[^A-Z0-9_]", "_", self.name.upper())

    def check(self, value: Any) -> Any:
        """The value, normalized for this argument's type, or Invalid naming the argument."""
        where = f"arguments.{self.name}"
        what = f"argument {self.name!r}"
        if self.type is ArgType.NUMBER:
            number: float | int
            if isinstance(value, bool):
                raise Invalid(f"{what} must be a number, not {value!r}", where)
            if isinstance(value, (int, float)):
                number = value
            elif isinstance(value, str):
                try:
                    number = float(value.strip())
                except ValueError:
                    raise Invalid(f"{what} must be a number, not {value!r}", where) from None
            else:
                raise Invalid(f"{what} must be a number", where)
            if isinstance(number, float):
                if not math.isfinite(number):
                    raise Invalid(f"{what} must be a finite number", where)
                if number.is_integer() and abs(number) < 2**53:
                    number = int(number)
            return number
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Invalid(f"{what} must be a string", where)
        text = str(value)
        if "\x00" in text:
            raise Invalid(f"{what} must not contain NUL characters", where)
        if self.type is ArgType.TEXT:
            if len(text) > MAX_TEXT:
                raise Invalid(f"{what} is longer than {MAX_TEXT} characters", where)
            return text
        if self.type is ArgType.SELECT:
            if text not in self.options:
                raise Invalid(
                    f"{what} must be one of {', '.join(map(repr, self.options))}, not {text!r}",
                    where,
                )
            return text
        if self.type is ArgType.DATE:
            return _date(text, what, where)
        if not text or len(text) > MAX_FILE_REF:
            raise Invalid(f"{what} must name a file (1 to {MAX_FILE_REF} characters)", where)
        return text

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "label": self.label or self.name,
            "help": self.help,
            "required": self.required,
            "default": self.default,
        }
        if self.options:
            out["options"] = list(self.options)
        if self.secret:
            out["secret"] = True
        return out

    @classmethod
    def from_json(cls, data: Any) -> Argument:
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, dict):
            raise Invalid("each argument is an object with at least a name", "arguments")
        known = {"name", "type", "label", "help", "required", "default", "options", "secret"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise Invalid(
                f"unknown key {unknown[0]!r} in an argument: use {', '.join(sorted(known))}",
                "arguments",
            )
        kind = data.get("type", "text")
        if kind not in ArgType.__members__.values():
            raise Invalid(
                f"argument type {kind!r} is unknown: use one of {', '.join(ArgType)}",
                "arguments",
            )
        options = data.get("options") or ()
        if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
            raise Invalid("options must be a list of strings", "arguments")
        required = data.get("required", True)
        secret = data.get("secret", False)
        if not isinstance(required, bool) or not isinstance(secret, bool):
            raise Invalid("required and secret are true or false", "arguments")
        return cls(
            name=data.get("name", ""),
            type=ArgType(kind),
            label=str(data.get("label") or ""),
            help=str(data.get("help") or ""),
            required=required,
            default=data.get("default"),
            options=tuple(options),
            secret=secret,
        )


def _kept(value: Any) -> bool:
    """A sealed value (checked before it was sealed) or MASK (the stored one, kept)."""
    return is_sealed(value) or value == MASK


def _date(text: str, what: str, where: str) -> str:
    candidate = text.strip().replace("Z", "+00:00")
    try:
        if len(candidate) == 10:
            return dt.date.fromisoformat(candidate).isoformat()
        return dt.datetime.fromisoformat(candidate).isoformat()
    except ValueError:
        raise Invalid(
            f"{what} must be a date such as 2026-01-31 (or 2026-01-31T12:00:00Z), not {text!r}",
            where,
        ) from None


def check_schema(arguments: Sequence[Argument]) -> tuple[Argument, ...]:
    if len(arguments) > MAX_ARGUMENTS:
        raise Invalid(f"a task declares at most {MAX_ARGUMENTS} arguments", "arguments")
    names = [a.name for a in arguments]
    for name in names:
        if names.count(name) > 1:
            raise Invalid(f"argument {name!r} is declared twice", "arguments")
    return tuple(arguments)


def bind_arguments(schema: Sequence[Argument], given: Any) -> dict[str, Any]:
    """Check a run's argument values against the schema; values by name or by position.

    Returns every declared argument by name, in declaration order (None when optional and
    not given). Raises Invalid naming the first wrong argument.
    """
    declared = [a.name for a in schema]
    if given is None:
        given = {}
    if isinstance(given, (list, tuple)):
        if len(given) > len(schema):
            raise Invalid(
                f"{len(given)} arguments given; this task declares {len(schema)}"
                + (f" ({', '.join(declared)})" if declared else ""),
                "arguments",
            )
        given = {schema[i].name: v for i, v in enumerate(given)}
    if not isinstance(given, Mapping):
        raise Invalid("arguments are an object {name: value} or a list of values", "arguments")
    for name in given:
        if name not in declared:
            hint = f"this task declares {', '.join(declared)}" if declared else "it takes none"
            raise Invalid(f"unknown argument {name!r}: {hint}", f"arguments.{name}")
    out: dict[str, Any] = {}
    for arg in schema:
        value = given.get(arg.name)
        if arg.secret and _kept(value):
            out[arg.name] = value  # checked before it was sealed (MASK: the stored one)
            continue
        if value is None or (value == "" and arg.type is not ArgType.TEXT):
            if arg.default is not None:
                out[arg.name] = arg.default
                continue
            if arg.required:
                raise Invalid(f"argument {arg.name!r} is required", f"arguments.{arg.name}")
            out[arg.name] = None
            continue
        out[arg.name] = arg.check(value)
    return out


def positional(values: Mapping[str, Any]) -> list[str]:
    """The argument values as command-line words, in declaration order ('' when missing)."""
    return ["" if v is None else str(v) for v in values.values()]


def with_arguments(
    command: str,
    argv: Sequence[str] | None,
    values: Mapping[str, Any],
    schema: Sequence[Argument] = (),
) -> tuple[str, tuple[str, ...] | None]:
    """The command (or argv) with the argument values appended as positional words.

    A secret argument's word in a shell command is ``"$JOBYARD_ARG_<NAME>"`` (the shell reads
    it from the environment), so the stored command never holds the value; in an argv it is
    the sealed value itself, opened only in what the node receives.
    """
    words = positional(values)
    if argv is not None:
        return "", (*argv, *words)
    if not words:
        return command, None
    secret = {a.name: a.env_name for a in schema if a.secret}
    quoted = [
        f'"${secret[name]}"' if name in secret else shlex.quote(word)
        for name, word in zip(values, words, strict=True)
    ]
    return command + " " + " ".join(quoted), None


def argument_env(schema: Sequence[Argument], values: Mapping[str, Any]) -> dict[str, str]:
    return {a.env_name: "" if values.get(a.name) is None else str(values[a.name]) for a in schema}


@dataclass(frozen=True)
class TaskSpec:
    """What a task is; checked as a whole when created or changed."""

    name: str
    type: TaskType = TaskType.SCRIPT
    description: str = ""
    command: str = ""
    argv: tuple[str, ...] | None = None
    target: Target | None = None
    quorum: Quorum = field(default_factory=Quorum)
    run_timeout: int | None = 3600
    env: dict[str, str] = field(default_factory=dict)
    dir: str | None = None
    arguments: tuple[Argument, ...] = ()
    approvers: tuple[int, ...] = ()
    approve_label: str = "Approve"
    reject_label: str = "Reject"
    allow_self_approval: bool = False
    message: str = ""
    recipients: tuple[int, ...] = ()
    cancellable: bool = True
    hold_timeout: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: ConcurrencyPolicy = field(default_factory=ConcurrencyPolicy)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name.strip()) <= _TASK_NAME_MAX:
            raise Invalid(f"a task name is 1 to {_TASK_NAME_MAX} characters", "name")
        check_schema(self.arguments)
        if self.type.runs_command:
            if self.argv is None and not self.command.strip():
                raise Invalid(
                    f"a {self.type} task needs a command (a shell string) or argv (a list)",
                    "command",
                )
            # The same rules as a job's: environment names, timeouts, quorum, NUL bytes.
            JobSpec(
                target=self.target or Target(count=1),
                command=self.command if self.argv is None else "",
                argv=self.argv,
                quorum=self.quorum,
                run_timeout=self.run_timeout,
                env=self.env,
                dir=self.dir,
            )
        elif self.command or self.argv:
            raise Invalid(f"a {self.type} task runs no command: remove command/argv", "command")
        if self.type is TaskType.APPROVAL and not self.approvers:
            raise Invalid("an approval task needs at least one approver", "approvers")
        if self.type is not TaskType.APPROVAL and self.approvers:
            raise Invalid("only approval tasks have approvers", "approvers")
        if self.hold_timeout is not None and not 1 <= self.hold_timeout <= MAX_HOLD:
            raise Invalid(f"hold_timeout is in seconds, from 1 to {MAX_HOLD}", "hold_timeout")
        for label, name in (
            (self.approve_label, "approve_label"),
            (self.reject_label, "reject_label"),
        ):
            if not 1 <= len(label) <= 64:
                raise Invalid(f"{name} is 1 to 64 characters", name)


def job_spec(
    task: TaskSpec,
    values: Mapping[str, Any],
    *,
    target: Target | None = None,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> JobSpec:
    """The job a script run of ``task`` becomes. Environment: the task's, then ``env`` (a
    stack's), then the arguments."""
    where = target or task.target
    if where is None:
        raise Invalid(
            f"task {task.name!r} has no target: give one when running it, or run it on a stack",
            "target",
        )
    command, argv = with_arguments(task.command, task.argv, values, task.arguments)
    return JobSpec(
        target=where,
        command=command,
        argv=argv,
        name=name or task.name,
        description=task.description,
        quorum=task.quorum,
        run_timeout=task.run_timeout,
        env={**task.env, **(env or {}), **argument_env(task.arguments, values)},
        dir=task.dir,
        meta=dict(meta or {}),
    )


class Hold(StrEnum):
    """What an ``onhold`` job of a task waits for."""

    QUEUE = "queue"  # a free slot under the task's or trigger's concurrency policy
    RETRY = "retry"  # the backoff before its next attempt
    APPROVAL = "approval"  # an approver's decision
    INPUT = "input"  # a person's arguments


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    org_id: int
    spec: TaskSpec
    secret_prefix: str | None
    secret_rotated_at: dt.datetime | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type(self) -> TaskType:
        return self.spec.type


@dataclass(frozen=True, slots=True)
class TaskRun:
    """Where a job came from, which attempt it is, and what it waits for."""

    job_id: int
    org_id: int
    task_id: int | None
    trigger_id: int | None
    stack_id: int | None
    try_no: int
    first_job_id: int | None
    hold: Hold | None
    release_at: dt.datetime | None
    requested_by: int | None
    approvers: list[int] | None
    created_at: dt.datetime


class InputStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    EXPIRED = "expired"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class InputRequest:
    """Input a running command asked for: the fields it wants and, once given, the answer."""

    id: int
    org_id: int
    job_id: int
    node_name: str
    attempt: int
    prompt: str
    fields: list[dict[str, Any]]
    status: InputStatus
    answer: dict[str, Any] | None
    answered_by: str | None
    deadline: dt.datetime | None
    created_at: dt.datetime
    answered_at: dt.datetime | None
