"""How TheEye shows a job: the ``publish()`` shape of its supervisor, for people and for
agents, and its list query (``where``, ``include``, ``sort``, ``limit``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from jobyard.domain.dialects import theeye
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Principal
from jobyard.domain.tasks import Task
from jobyard.service.jobs import JobView
from jobyard.service.provenance import NO_ORIGIN, Origin

MAX_LIST = 1000
WHERE_FIELDS = ("task_id", "lifecycle", "state", "name", "user_id", "_type", "type", "hostname")
# TheEye sort key -> native sort key.
SORT_FIELDS: Mapping[str, str] = {
    "creation_date": "created_at",
    "last_update": "updated_at",
    "name": "name",
    "id": "id",
    "_id": "id",
}


def _hex(native: int | None) -> str | None:
    return None if native is None else theeye.render_id(native)


def task_summary(task: Task) -> dict[str, Any]:
    """The task as a job shows it (TheEye's publish keeps these fields)."""
    spec = task.spec
    arguments = []
    for order, arg in enumerate(spec.arguments):
        item: dict[str, Any] = {
            "id": order,
            "order": order,
            "type": theeye.ARGUMENT_TYPE.get(arg.type.value, "input"),
            "label": arg.label or arg.name,
            "value": "" if arg.default is None else arg.default,
            "help": arg.help,
            "required": arg.required,
            "readonly": False,
        }
        if arg.options:
            item["options"] = [{"id": o, "label": o} for o in arg.options]
        arguments.append(item)
    return {
        "id": theeye.render_id(task.id),
        "_type": theeye.TASK_TYPE.get(spec.type.value, "ScriptTask"),
        "type": spec.type.value if spec.type.value != "input" else "script",
        "name": spec.name,
        "approvers": [theeye.render_id(a) for a in spec.approvers],
        "task_arguments": arguments,
        "output_parameters": [],
        "cancellable": spec.cancellable,
    }


def _arguments(values: Any) -> list[Any]:
    if isinstance(values, dict):
        return list(values.values())
    if isinstance(values, list):
        return list(values)
    return []


def _origin_word(view: JobView, origin: Origin) -> str:
    if view.job.trigger_id is not None or (origin.run and origin.run.trigger_id is not None):
        return "scheduler"
    if view.job.created_by is None:
        return "secret"  # nobody signed in started it: a task's secret URL did
    return "user"


def lifecycle_of(view: JobView, origin: Origin) -> str:
    job = view.job
    return theeye.lifecycle(job.status, hold=origin.hold, started=job.started_at is not None)


def state_of(view: JobView) -> str:
    return theeye.state(view.job.status, view.job.state, (r.status for r in view.runs))


def job(view: JobView, origin: Origin, org_name: str | None) -> dict[str, Any]:
    """A job as TheEye publishes it to people."""
    j = view.job
    lifecycle = lifecycle_of(view, origin)
    state = state_of(view)
    _type, type_ = theeye.job_type(j.kind)
    result = _result(j.result, j.kind, j.arguments)
    cancellable = origin.task.spec.cancellable if origin.task is not None else True
    trigger = None
    if lifecycle == theeye.FINISHED:
        trigger = theeye.FAILURE if state == theeye.FAILURE else theeye.SUCCESS
    elif lifecycle in (theeye.CANCELED, theeye.TERMINATED) and "stopped_by" in (
        j.result if isinstance(j.result, dict) else {}
    ):
        trigger = theeye.STATE_CANCELED
    return {
        "id": theeye.render_id(j.id),
        "_type": _type,
        "type": type_,
        "name": j.name or (origin.task.name if origin.task else j.command),
        "order": 0,
        "state": state,
        "lifecycle": lifecycle,
        "creation_date": theeye.timestamp(j.created_at),
        "last_update": theeye.timestamp(j.updated_at),
        "customer_id": theeye.render_id(j.org_id),
        "customer_name": org_name,
        "user_id": _hex(j.created_by),
        "task_id": _hex(j.task_id),
        "task": task_summary(origin.task) if origin.task is not None else None,
        "hostname": view.runs[0].node_name if view.runs else None,
        "task_arguments_values": _arguments(j.arguments),
        "output": theeye.output_parameters(result.get("output")),
        "result": result,
        "trigger_name": trigger,
        "origin": _origin_word(view, origin),
        "cancellable": cancellable,
        "timeout": j.run_timeout * 1000 if j.run_timeout is not None else None,
        "acl": [],
    }


def _result(stored: Any, kind: str, arguments: Any) -> dict[str, Any]:
    """The supervisor's result: a cancel records ``{user, output: [user]}``; an approval's
    decision ``{user, output: [*arguments, user]}``; a script's result is kept as given."""
    if not isinstance(stored, dict):
        return {}
    stopper = stored.get("stopped_by")
    if isinstance(stopper, dict):
        who = theeye.person(stopper.get("user_id"), stopper.get("email"))
        return {"user": who, "output": [who]}
    if kind == "approval" and "decision" in stored:
        who = theeye.person(stored.get("by"), stored.get("email"))
        return {"user": who, "output": [*_arguments(arguments), who]}
    return stored


def script_of(view: JobView) -> str:
    j = view.job
    return theeye.script(j.command, j.argv, j.env, j.dir)


def agent_job(view: JobView, origin: Origin, org_name: str | None) -> dict[str, Any]:
    """A job as TheEye hands it to an agent: with the script to download and run."""
    out = job(view, origin, org_name)
    script_id = out["id"]
    text = script_of(view)
    out.update(
        _type="ScriptJob",
        script_id=script_id,
        script={
            "id": script_id,
            "filename": f"jobyard-{script_id}.sh",
            "md5": theeye.script_md5(text),
        },
        script_arguments=[],
        script_runas="",
        env=dict(view.job.env),
    )
    return out


@dataclass
class ListQuery:
    """TheEye's list query, translated: what the store can filter, and what is checked after."""

    where: dict[str, str] = field(default_factory=dict)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    sort: str = "id"
    descending: bool = False
    limit: int = MAX_LIST

    @property
    def impossible(self) -> bool:
        """A lifecycle word no jobyard job shows (TheEye's syncing, completed)."""
        word = self.where.get("lifecycle")
        return word is not None and word not in theeye.LIFECYCLE.values()

    @property
    def statuses(self) -> list[str]:
        word = self.where.get("lifecycle")
        if word is None:
            return []
        return sorted(s.value for s in theeye.statuses_of(word))

    def matches(self, item: dict[str, Any]) -> bool:
        return all(str(item.get(k)) == v for k, v in self.where.items() if k != "name")

    def project(self, item: dict[str, Any]) -> dict[str, Any]:
        """The supervisor's fetch: ``include[f]=1`` selects fields (the id always comes);
        without, a list item leaves out the heavy fields (and those ``include[f]=0`` names)."""
        if self.include:
            return {"id": item["id"], **{k: item[k] for k in self.include if k in item}}
        dropped = {*theeye.HEAVY_FIELDS, *self.exclude}
        return {k: v for k, v in item.items() if k not in dropped}


def _bracketed(key: str) -> tuple[str, str] | None:
    if "[" not in key or not key.endswith("]"):
        return None
    outer, _, inner = key[:-1].partition("[")
    return outer, inner


def list_query(params: QueryParams) -> ListQuery:
    """Parse ``where[f]=v``, ``include[f]=1``, ``sort[f]=1|-1`` and ``limit``."""
    q = ListQuery()
    sorts: list[tuple[str, str]] = []
    for key, value in params.multi_items():
        parts = _bracketed(key)
        if parts is None:
            continue
        outer, inner = parts
        if outer == "where":
            if inner not in WHERE_FIELDS:
                raise Invalid(
                    f"cannot filter on {inner!r}: use one of {', '.join(WHERE_FIELDS)}", "where"
                )
            q.where[inner] = value
        elif outer == "include":
            (q.exclude if value in ("0", "false") else q.include).append(inner)
        elif outer == "sort":
            sorts.append((inner, value))
    if sorts:
        key, direction = sorts[0]
        if key not in SORT_FIELDS:
            raise Invalid(f"cannot sort on {key!r}: use one of {', '.join(SORT_FIELDS)}", "sort")
        if direction not in ("1", "-1", "asc", "desc", "ascending", "descending"):
            raise Invalid("a sort direction is 1 (ascending) or -1 (descending)", "sort")
        q.sort = SORT_FIELDS[key]
        q.descending = direction in ("-1", "desc", "descending")
    raw = params.get("limit")
    if raw is not None and raw != "":
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIST:
            raise Invalid(f"limit is a whole number from 1 to {MAX_LIST}", "limit")
        q.limit = int(raw)
    for key in ("task_id", "user_id"):
        if key in q.where:
            q.where[key] = q.where[key].lower()
    return q


def for_item(who: Principal, view: JobView, origins: Mapping[int, Origin]) -> dict[str, Any]:
    name = who.org_name if view.job.org_id == who.org_id else None
    return job(view, origins.get(view.job.id, NO_ORIGIN), name)
