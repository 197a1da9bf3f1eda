"""Native renderings of records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request

from jobyard.api.responses import iso, utc
from jobyard.domain.errors import Invalid
from jobyard.domain.outcomes import job_outcome
from jobyard.domain.records import Event, NodeRun, Page
from jobyard.domain.secrets import masked, secret_names
from jobyard.service.jobs import JobView

T = TypeVar("T")
# Keeps offsets within what the databases accept (64-bit), whatever the page size.
MAX_PAGE = 10**9


# A job's and a run's times stay datetimes here: ``responses.dumps`` writes them (as
# ``iso`` would, ten times quicker).
def node_run(run: NodeRun) -> dict[str, Any]:
    return {
        "node": run.node_name,
        "status": run.status.value,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "attempt": run.attempt,
        "truncated": run.truncated,
        "created_at": utc(run.created_at),
        "updated_at": utc(run.updated_at),
        "started_at": utc(run.started_at),
        "finished_at": utc(run.finished_at),
    }


def node_states(runs: Sequence[NodeRun]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in runs:
        out.setdefault(r.status.value, []).append(r.node_name)
    return out


def job(view: JobView, base_url: str) -> dict[str, Any]:
    j = view.job
    outcome = job_outcome(j, view.runs)
    return {
        "id": j.id,
        "name": j.name,
        "description": j.description,
        "command": j.command,
        "argv": masked(j.argv),
        "target": j.target,
        "nodes": view.node_names or list(j.target.get("nodes", [])),
        "quorum": j.quorum,
        "run_timeout": j.run_timeout,
        "env": masked(j.env),
        "secret_env": secret_names(j.env),
        "dir": j.dir,
        "capture_output": j.capture_output,
        "input_files": list(j.meta.get("input_files") or []),
        "outputs": j.meta.get("outputs"),
        "status": j.status.value,
        "outcome": outcome.outcome.value,
        "outcome_label": outcome.label,
        "attempt": j.attempt,
        "created_by": j.created_by,
        "created_at": utc(j.created_at),
        "updated_at": utc(j.updated_at),
        "submitted_at": utc(j.submitted_at),
        "started_at": utc(j.started_at),
        "finished_at": utc(j.finished_at),
        "node_states": node_states(view.runs),
        "node_runs": [node_run(r) for r in view.runs],
        "url": f"{base_url}/api/v1/jobs/{j.id}",
    }


def event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "type": e.type,
        "kind": e.kind,
        "subject_id": e.subject_id,
        "job_id": e.job_id,
        "node": e.node_name,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "status": e.to_status,
        "actor": e.actor,
        "reason": e.reason,
        "data": e.data,
        "created_at": iso(e.created_at),
    }


def page_params(page: int, page_size: int, max_size: int) -> tuple[int, int]:
    if page < 1:
        raise Invalid("page starts at 1", "page")
    if page > MAX_PAGE:
        raise Invalid(f"page must be at most {MAX_PAGE}", "page")
    if not 1 <= page_size <= max_size:
        raise Invalid(f"page_size must be 1 to {max_size}", "page_size")
    return (page - 1) * page_size, page_size


def paginated(
    request: Request, page: Page[T], number: int, size: int, render: Callable[[T], Any]
) -> dict[str, Any]:
    """``{count, next, previous, results}`` with absolute next/previous URLs."""

    def link(n: int) -> str:
        return str(request.url.include_query_params(page=n, page_size=size))

    has_next = number * size < page.total
    return {
        "count": page.total,
        "next": link(number + 1) if has_next else None,
        "previous": link(number - 1) if number > 1 else None,
        "results": [render(item) for item in page.items],
    }
