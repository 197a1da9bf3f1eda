"""Stacks as chains of steps, and the runs of those chains.

A step is a task (by id; names are resolved by the service), its argument values and,
optionally, its own target. Steps run one after another; a step that fails stops the chain
unless it says ``on_failure: continue``; a stack may name one ``on_failure`` step that runs
when the chain stops on a failure. An argument value may read the previous step's output:
``${previous.stdout}`` (its standard output, without the final newline) or
``${previous.output.NAME}`` (a named value: a key of the JSON object printed on the last
line of its standard output, TheEye's convention for a script's result).

A stack without steps is the one-step case: its own task or command on its target.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus, NodeRunStatus, job_succeeded
from jobyard.domain.targets import Target

MAX_STEPS = 50
MAX_REFERENCE_VALUE = 65536
_STEP_KEYS = {"name", "task", "task_id", "arguments", "target", "on_failure"}
_FAILURE_KEYS = {"name", "task", "task_id", "arguments", "target"}
# ${previous.stdout} or ${previous.output.NAME}
REFERENCE = re.compile(r"\$\{previous\.(stdout|output\.([A-Za-z_][A-Za-z0-9_.-]{0,99}))\}")


class OnFailure(StrEnum):
    STOP = "stop"
    CONTINUE = "continue"


class StackRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self is not StackRunStatus.RUNNING


class StepState(StrEnum):
    """What a chain page shows for one step (derived from its job, or its absence)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Step:
    task_id: int
    arguments: Any = None
    target: Target | None = None
    on_failure: OnFailure = OnFailure.STOP
    name: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task_id": self.task_id, "arguments": self.arguments}
        if self.name is not None:
            out["name"] = self.name
        if self.target is not None:
            out["target"] = self.target.as_json()
        out["on_failure"] = self.on_failure.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        target = data.get("target")
        return cls(
            task_id=int(data["task_id"]),
            arguments=data.get("arguments"),
            target=Target.from_json(target) if target else None,
            on_failure=OnFailure(data.get("on_failure") or "stop"),
            name=data.get("name"),
        )


def parse_target(value: Any, where: str) -> Target | None:
    """A target as given in a request (``{nodes | tags | cluster, count}``), checked."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise Invalid(f"{where}.target is an object: nodes, tags, cluster or count", where)
    unknown = sorted(set(value) - {"nodes", "tags", "cluster", "count"})
    if unknown:
        raise Invalid(f"unknown key {unknown[0]!r} in {where}.target", where)
    for key in ("nodes", "tags"):
        v = value.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise Invalid(f"{where}.target.{key} must be a list of names", where)
    if value.get("cluster") is not None and not isinstance(value["cluster"], str):
        raise Invalid(f"{where}.target.cluster must be a name", where)
    count = value.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise Invalid(f"{where}.target.count must be a whole number", where)
    return Target.from_json(value)


@dataclass(frozen=True, slots=True)
class StepIn:
    """A step as given: its task by id or by name, not yet resolved."""

    task: int | str
    arguments: Any
    target: Target | None
    on_failure: OnFailure
    name: str | None


def _arguments(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    raise Invalid(f"{where}.arguments is an object {{name: value}} or a list of values", where)


def parse_step(value: Any, where: str, *, failure_step: bool = False) -> StepIn:
    """Check one step as given in a request (the task is resolved later)."""
    if not isinstance(value, dict):
        raise Invalid(f"{where} is an object: {{task, arguments, target, on_failure}}", where)
    allowed = _FAILURE_KEYS if failure_step else _STEP_KEYS
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise Invalid(
            f"unknown key {unknown[0]!r} in {where}: use {', '.join(sorted(allowed))}", where
        )
    task = value.get("task", value.get("task_id"))
    if "task" in value and "task_id" in value:
        raise Invalid(f"give {where}.task or {where}.task_id, not both", where)
    if isinstance(task, bool) or not isinstance(task, (int, str)) or task == "":
        raise Invalid(f"{where}.task names a task: its id or its name", where)
    on_failure = value.get("on_failure", "stop")
    if on_failure not in ("stop", "continue"):
        raise Invalid(f"{where}.on_failure is stop or continue", where)
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 200):
        raise Invalid(f"{where}.name is a string of 1 to 200 characters", where)
    return StepIn(
        task=task,
        arguments=_arguments(value.get("arguments"), where),
        target=parse_target(value.get("target"), where),
        on_failure=OnFailure(on_failure),
        name=name,
    )


def parse_steps(value: Any) -> list[StepIn]:
    if not isinstance(value, list) or not value:
        raise Invalid("steps is a list of at least one step", "steps")
    if len(value) > MAX_STEPS:
        raise Invalid(f"a stack has at most {MAX_STEPS} steps", "steps")
    steps = [parse_step(v, f"steps[{i}]") for i, v in enumerate(value)]
    if references(steps[0].arguments):
        raise Invalid("steps[0] has no previous step to read ${previous...} from", "steps")
    return steps


def references(arguments: Any) -> bool:
    """Whether argument values read the previous step's output."""
    values = arguments.values() if isinstance(arguments, dict) else (arguments or [])
    return any(isinstance(v, str) and REFERENCE.search(v) for v in values)


def named_outputs(stdout: str) -> dict[str, Any]:
    """The named values of a step: the JSON object on the last non-empty line of stdout."""
    for line in reversed(stdout.splitlines()):
        if not line.strip():
            continue
        try:
            found = json.loads(line)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
    return {}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def resolve(arguments: Any, previous_stdout: str | None) -> Any:
    """The argument values with ``${previous...}`` replaced by the previous step's output.

    A reference to a named value the previous step did not print is an error (the chain
    stops saying which), not an empty string.
    """
    if not references(arguments):
        return arguments
    stdout = previous_stdout or ""
    outputs = named_outputs(stdout)

    def one(value: Any) -> Any:
        if not isinstance(value, str):
            return value

        def sub(m: re.Match[str]) -> str:
            if m.group(1) == "stdout":
                return stdout[:-1] if stdout.endswith("\n") else stdout
            name = m.group(2)
            if name not in outputs:
                raise Invalid(
                    f"the previous step printed no output value {name!r} "
                    "(a JSON object on its last line of stdout)",
                    "arguments",
                )
            return _text(outputs[name])

        out = REFERENCE.sub(sub, value)
        if len(out) > MAX_REFERENCE_VALUE:
            raise Invalid(
                f"an argument read from the previous step exceeds {MAX_REFERENCE_VALUE} characters",
                "arguments",
            )
        return out

    if isinstance(arguments, dict):
        return {k: one(v) for k, v in arguments.items()}
    return [one(v) for v in arguments]


@dataclass(frozen=True, slots=True)
class StackRun:
    id: int
    org_id: int
    stack_id: int | None
    stack_name: str
    status: StackRunStatus
    steps: tuple[Step, ...]
    on_failure: Step | None
    trigger_id: int | None
    created_by: int | None
    actor: str | None
    reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StackRunStep:
    stack_run_id: int
    idx: int  # position in the chain; len(steps) is the on_failure step
    job_id: int
    created_at: dt.datetime


def step_state(job_status: str | None, job_ok: bool | None) -> StepState:
    if job_status is None:
        return StepState.PENDING
    if job_ok is None:
        return StepState.RUNNING
    return StepState.SUCCEEDED if job_ok else StepState.FAILED


def chain_of(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [s.as_json() for s in steps]


_FAILED_STATES = frozenset({"failure", "error", "canceled", "expired"})


def step_succeeded(status: str, state: str | None, runs: Sequence[str]) -> bool:
    """Whether a finished step job lets the chain go on: complete, no failed node run, and
    no failure word in its result (a rejected approval completes with state ``failure``)."""
    if status != JobStatus.COMPLETE.value or (state or "") in _FAILED_STATES:
        return False
    return job_succeeded(NodeRunStatus(r) for r in runs)
