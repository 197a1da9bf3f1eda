"""What a job waits for from people, as the job page shows it: an approver's decision,
the arguments of an input job, or the input a running command asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from jobyard.domain.jobs import JobStatus
from jobyard.domain.records import Job, Principal
from jobyard.domain.tasks import Argument, Hold, InputRequest
from jobyard.service import approvals
from jobyard.service.context import Services
from jobyard.service.provenance import Origin

ARG_PREFIX = "arg:"


@dataclass(frozen=True)
class Approval:
    question: str
    approvers: list[str]
    may_decide: bool
    why_not: str
    approve_label: str
    reject_label: str
    decision: dict[str, Any] | None


@dataclass(frozen=True)
class Ask:
    """A form to fill: the job's own arguments (``request`` None) or a command's request."""

    fields: tuple[Argument, ...]
    prompt: str
    request: InputRequest | None = None


@dataclass(frozen=True)
class Waiting:
    approval: Approval | None = None
    asks: list[Ask] = field(default_factory=list)


def arguments_from(form: FormData | None) -> dict[str, str]:
    """The ``arg:NAME`` fields a person filled in (empty ones count as not given)."""
    if form is None:
        return {}
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if key.startswith(ARG_PREFIX) and isinstance(value, str) and value.strip():
            out[key[len(ARG_PREFIX) :]] = value.strip()
    return out


def _approval(job: Job, origin: Origin, who: Principal, names: dict[int, str]) -> Approval:
    spec = origin.task.spec if origin.task is not None else None
    ids = (origin.run.approvers if origin.run is not None else None) or []
    requested_by = origin.run.requested_by if origin.run is not None else None
    why_not = ""
    if job.status is not JobStatus.ONHOLD:
        why_not = "decided"
    elif who.user_id not in ids:
        why_not = "you are not one of its approvers"
    elif requested_by == who.user_id and not (spec and spec.allow_self_approval):
        why_not = "you requested it: another approver decides"
    result = job.result if isinstance(job.result, dict) else None
    return Approval(
        question=(spec.message if spec else "") or (spec.description if spec else ""),
        approvers=[names.get(i, f"user {i}") for i in ids],
        may_decide=not why_not,
        why_not=why_not,
        approve_label=spec.approve_label if spec else "Approve",
        reject_label=spec.reject_label if spec else "Reject",
        decision=result if result and "decision" in result else None,
    )


async def waiting(
    svc: Services, who: Principal, job: Job, origin: Origin, names: dict[int, str]
) -> Waiting:
    approval = _approval(job, origin, who, names) if job.kind == "approval" else None
    asks: list[Ask] = []
    if job.status is JobStatus.ONHOLD and origin.run is not None and origin.run.hold is Hold.INPUT:
        spec = origin.task.spec if origin.task is not None else None
        asks.append(Ask(spec.arguments if spec else (), spec.description if spec else ""))
    elif job.status is JobStatus.RUNNING and job.org_id == who.org_id:
        for request in await approvals.pending_input(svc, who, job.id):
            fields = tuple(Argument.from_json(f) for f in request.fields)
            asks.append(Ask(fields, request.prompt, request))
    return Waiting(approval, asks)
