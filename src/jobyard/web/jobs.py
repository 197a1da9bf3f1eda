"""Job pages: the live list, the start form, a job with its nodes, timeline, output and
history, and the actions on it (stop, submit, delete)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, JobyardError, NotFound
from jobyard.domain.jobs import JOB_TERMINAL, JobStatus
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.outputs import STREAMS
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Event, Job, NodeRun, Principal
from jobyard.service import accounts, feeds, outputs, provenance, sharing, watchers
from jobyard.service import clusters as cluster_uc
from jobyard.service import jobs as uc
from jobyard.service import nodes as node_uc
from jobyard.service import tasks as task_uc
from jobyard.service.context import Services
from jobyard.store.jobs import JobFilter
from jobyard.web import timeline
from jobyard.web.ansi import to_html
from jobyard.web.forms import (
    env_of_form,
    env_text,
    int_field,
    raw_field,
    target_from,
    target_values,
)
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id
from jobyard.web.waiting import waiting

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 20
# The job page opens the output of its first OPEN_RUNS nodes and shows the last SHOWN
# bytes of each stream; the whole stream is one click away (raw).
OPEN_RUNS = 3
SHOWN = 64 * 1024
CUT_NOTE = Markup(
    '<span class="output-cut">[earlier output is not shown here: see raw for the whole'
    " stream]</span>\n"
)
ACTIVE = [s.value for s in (JobStatus.ONHOLD, JobStatus.NEW, JobStatus.VOTING, JobStatus.RUNNING)]
FINISHED = [s.value for s in JOB_TERMINAL]
STATUS_CHOICES = [("", "any status"), ("active", "active"), ("finished", "finished")] + [
    (s.value, s.value.replace("_", " ")) for s in JobStatus
]


# -- the list


def _statuses(choice: str) -> list[str]:
    if choice == "active":
        return ACTIVE
    if choice == "finished":
        return FINISHED
    if choice in JobStatus.__members__.values():
        return [choice]
    if choice:
        raise Invalid(f"unknown status {choice!r}", "status")
    return []


async def _member_names(svc: Services, who: Principal) -> dict[int, str]:
    return {m.user_id: m.display_name or m.email for m in await accounts.list_members(svc, who)}


def node_summary(view: uc.JobView) -> str:
    """'3 of 4 succeeded' style: how far the nodes got, in a few words."""
    total = len(view.runs)
    if view.job.kind != "script":
        return f"{view.job.kind}: no nodes"
    if total == 0:
        target = view.job.target
        if target.get("nodes"):
            return f"{len(target['nodes'])} nodes"
        return "no nodes yet"
    counts = Counter(r.status.value for r in view.runs)
    top, n = counts.most_common(1)[0]
    if n == total:
        return f"{'all ' if total > 1 else ''}{total} {top}"
    return ", ".join(f"{c} {s}" for s, c in counts.most_common(3))


@router.get("/jobs")
async def job_list(
    page: Viewer,
    status: str = "",
    q: str = "",
    mine: str = "",
    node: str = "",
    n: int = 1,
) -> Response:
    who = page.user
    n = max(1, n)
    flt = JobFilter(
        statuses=_statuses(status),
        text=q.strip() or None,
        owner_id=who.user_id if mine else None,
        node=node.strip() or None,
    )
    result = await uc.list_jobs(page.svc, who, flt, offset=(n - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-result.total // PAGE_SIZE))
    filtered = bool(status or q or mine or node)
    context: dict[str, Any] = {
        "jobs": result.items,
        "total": result.total,
        "n": n,
        "pages": pages,
        "filters": {"status": status, "q": q, "mine": mine, "node": node},
        "filtered": filtered,
        "status_choices": STATUS_CHOICES,
        "names": await _member_names(page.svc, who),
        "summary": node_summary,
        "may_start": who.role.at_least(Role.USER),
    }
    if page.fragment:
        return await page.render("_jobs_table.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("jobs.html", **context)


# -- starting a job


def spec_from_form(page: Page) -> JobSpec:
    """The job the start form describes; Invalid (with the field) when a value is wrong."""
    target = target_from(page)
    assert target is not None
    timeout = int_field(page, "run_timeout", "the timeout")
    return JobSpec(
        target=target,
        command=page.field("command"),
        name=page.field("name") or None,
        description=page.field("description"),
        quorum=Quorum.parse(page.field("quorum") or None),
        run_timeout=DEFAULT_RUN_TIMEOUT if timeout is None else timeout,
        env=env_of_form(page, {}),
        dir=page.field("dir") or None,
        capture_output=page.field("capture_output") == "1",
    )


def form_values(job: Job | None = None) -> dict[str, str]:
    """The start form's fields, empty or copied from a job ("run again")."""
    if job is None:
        return {
            "command": "",
            "target_kind": "nodes",
            "nodes": "",
            "cluster": "",
            "tags": "",
            "count": "",
            "quorum": "100%",
            "run_timeout": str(DEFAULT_RUN_TIMEOUT),
            "name": "",
            "description": "",
            "env": "",
            "secret_env": "",
            "dir": "",
            "capture_output": "1",
            "allow_unknown_nodes": "",
        }
    return {
        "command": job.command,
        **target_values(job.target),
        "quorum": job.quorum,
        "run_timeout": "" if job.run_timeout is None else str(job.run_timeout),
        "name": job.name or "",
        "description": job.description,
        "env": env_text(job.env),
        "secret_env": "",  # a new job: its secrets are typed again
        "dir": job.dir or "",
        "capture_output": "1" if job.capture_output else "",
        "allow_unknown_nodes": "",
    }


async def _form_page(
    page: Page, values: dict[str, str], error: str = "", field: str = "", status_code: int = 200
) -> Response:
    who = page.user
    nodes = await node_uc.list_nodes(page.svc, who)
    clusters = [
        c for c in await cluster_uc.list_clusters(page.svc, who) if c.status != "terminated"
    ]
    tags = sorted({t for n in nodes for t in n.tags})
    return await page.render(
        "job_new.html",
        tasks=(await task_uc.list_tasks(page.svc, who, limit=50)).items,
        status_code=status_code,
        values=values,
        error=error,
        error_field=field,
        nodes=nodes,
        clusters=clusters,
        tags=tags,
    )


@router.get("/jobs/new")
async def new_job(page: Viewer, again: int | None = None) -> Response:
    job = (await uc.get_job(page.svc, page.user, again)).job if again else None
    return await _form_page(page, form_values(job))


@router.post("/jobs")
async def start_job(page: Poster) -> Response:
    values = {k: page.field(k) for k in form_values()}
    values["env"] = raw_field(page, "env")
    values["secret_env"] = raw_field(page, "secret_env")
    try:
        spec = spec_from_form(page)
        allow = page.field("allow_unknown_nodes") == "1" or page.svc.settings.allow_unknown_nodes
        view = await uc.create_job(
            page.svc,
            page.user,
            spec,
            draft=page.field("draft") == "1",
            known_nodes_only=not allow,
        )
    except JobyardError as exc:
        return await _form_page(
            page,
            values,
            exc.detail,
            getattr(exc, "field", None) or "",
            status_code=exc.status_code,
        )
    return page.redirect(f"/jobs/{view.job.id}")


# -- one job


async def _all_events(svc: Services, who: Principal, job_id: int) -> list[Event]:
    """Every event of a job (the log is read in pages of 500)."""
    out: list[Event] = []
    while True:
        batch = await uc.job_events(svc, who, job_id, out[-1].id if out else 0)
        out.extend(batch)
        if len(batch) < 500 or len(out) >= 20_000:
            return out


def _may_change(who: Principal, job: Job) -> bool:
    return who.role is Role.ADMIN or (
        who.role.at_least(Role.USER) and job.created_by == who.user_id
    )


HISTORY_TYPES = ("job.created", "job.status", "job.shared", "job.unshared")


async def _job_context(page: Page, job_id: int) -> dict[str, Any]:
    who = page.user
    svc = page.svc
    view = await uc.get_job(svc, who, job_id)
    events = await _all_events(svc, who, job_id)
    watching = await watchers.list_watchers(svc, who, "job", job_id)
    counts = Counter(r.status.value for r in view.runs)
    origin = (await provenance.origins(svc, [view])).get(job_id, provenance.NO_ORIGIN)
    names = await _member_names(svc, who)
    return {
        "job": view.job,
        "runs": view.runs,
        "counts": sorted(counts.items()),
        "timeline": timeline.build(view.job, view.runs, events, svc.clock.now()),
        "history": [e for e in events if e.kind == "job" and e.type in HISTORY_TYPES],
        "files": await outputs.list_files(svc, who, job_id),
        "names": names,
        "may_change": _may_change(who, view.job),
        "may_start": who.role.at_least(Role.USER),
        "summary": node_summary(view),
        "watchers": watching,
        "watching": any(w.user_id == who.user_id for w in watching),
        "shares": await sharing.list_shares(svc, who, job_id),
        "origin": origin,
        "waiting": await waiting(svc, who, view.job, origin, names),
        "errors": {},
        "values": {},
    }


async def _shown_output(svc: Services, job: Job, runs: list[NodeRun]) -> dict[str, dict[str, Any]]:
    """The open nodes' output on the page: each stream's last SHOWN bytes, rendered."""
    if not job.capture_output or job.kind != "script":
        return {}
    views = await outputs.tail_views(svc, runs[:OPEN_RUNS], SHOWN)
    out: dict[str, dict[str, Any]] = {}
    for (node, stream), shown in views.items():
        out.setdefault(node, {})[stream] = {"html": stream_html(shown), "end": shown.end}
    return out


def stream_html(view: outputs.StreamView) -> Markup:
    """A stream's shown text as HTML, after a note when earlier output is left out."""
    html = to_html(view.text)
    if view.reset and not view.whole:
        return CUT_NOTE + html
    return html


async def render_job(page: Page, job_id: int, *, status_code: int = 200, **extra: Any) -> Response:
    """The job page; ``extra`` overrides the context (e.g. a form's error and values)."""
    context = {**await _job_context(page, job_id), **extra}
    if page.fragment:
        return await page.render("_job_live.html", status_code=status_code, **context)
    shown = await _shown_output(page.svc, context["job"], context["runs"])
    return await page.render("job.html", status_code=status_code, shown=shown, **context)


def job_id_of(raw: str) -> int:
    return path_id(raw, "job")


@router.get("/jobs/{job_id}")
async def job_page(page: Viewer, job_id: str) -> Response:
    return await render_job(page, job_id_of(job_id))


@router.get("/jobs/{job_id}/output/{node}/{stream}")
async def job_output(
    page: Viewer, job_id: str, node: str, stream: str, offset: int = 0
) -> Response:
    """What the page lacks of one node's stream past byte ``offset``, as HTML; when that
    is too much or no longer kept, the stream's last SHOWN bytes to show instead
    (``X-Output-Reset: 1``). The stream's end, to ask from next time, in a header."""
    if stream not in STREAMS:
        raise NotFound(f"no output stream {stream!r}: use stdout or stderr")
    view = await outputs.view_stream(
        page.svc, page.user, job_id_of(job_id), node, stream, max(0, offset), SHOWN
    )
    return HTMLResponse(
        stream_html(view),
        headers={
            "X-Output-Length": str(view.end),
            "X-Output-Reset": "1" if view.reset else "0",
            "Cache-Control": "no-store",
        },
    )


@router.post("/jobs/{job_id}/stop")
async def stop(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    await uc.stop_job(page.svc, page.user, jid, page.field("reason") or None)
    return page.redirect(f"/jobs/{jid}", "stopped")


@router.post("/jobs/{job_id}/submit")
async def submit(page: Poster, job_id: str) -> Response:
    jid = job_id_of(job_id)
    await uc.submit_job(page.svc, page.user, jid)
    return page.redirect(f"/jobs/{jid}", "submitted")


@router.post("/jobs/{job_id}/delete")
async def delete(page: Poster, job_id: str) -> Response:
    await uc.delete_job(page.svc, page.user, job_id_of(job_id))
    return page.redirect("/jobs", "deleted")
