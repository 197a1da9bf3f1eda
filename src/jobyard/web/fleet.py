"""Fleet pages: nodes and clusters with their live state and history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role
from jobyard.domain.clusters import CLUSTER_TYPES
from jobyard.domain.errors import JobyardError
from jobyard.service import clusters as cluster_uc
from jobyard.service import feeds, watchers
from jobyard.service import jobs as job_uc
from jobyard.service import nodes as node_uc
from jobyard.store.jobs import JobFilter
from jobyard.web.forms import whole_number
from jobyard.web.jobs import node_summary
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/nodes")
async def nodes(page: Viewer) -> Response:
    found = await node_uc.list_nodes(page.svc, page.user)
    context: dict[str, Any] = {
        "nodes": found,
        "online": sum(1 for n in found if n.online),
    }
    if page.fragment:
        return await page.render("_nodes.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("nodes.html", **context)


@router.get("/nodes/{name}")
async def node_page(page: Viewer, name: str) -> Response:
    who = page.user
    node = await node_uc.get_node(page.svc, who, name)
    history = await node_uc.node_history(page.svc, who, name, limit=50, newest_first=True)
    recent = await job_uc.list_jobs(page.svc, who, JobFilter(node=name), limit=10)
    context: dict[str, Any] = {
        "node": node,
        "history": history.items,
        "history_total": history.total,
        "jobs": recent.items,
        "summary": node_summary,
    }
    if page.fragment:
        return await page.render("_node.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("node.html", **context)


async def _clusters_page(
    page: Page, *, error: str = "", values: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    who = page.user
    show_all = page.request.query_params.get("all") == "1"
    found = await cluster_uc.list_clusters(page.svc, who)
    if not show_all:
        found = [c for c in found if c.status != "terminated"]
    context: dict[str, Any] = {
        "clusters": found,
        "show_all": show_all,
        "may_create": who.role.at_least(Role.USER),
        "types": CLUSTER_TYPES,
        "error": error,
        "values": values or {"name": "", "nodes": "1", "type": "production", "description": ""},
    }
    if page.fragment:
        return await page.render("_clusters.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("clusters.html", status_code=status_code, **context)


@router.get("/clusters")
async def clusters(page: Viewer) -> Response:
    return await _clusters_page(page)


@router.post("/clusters")
async def create_cluster(page: Poster) -> Response:
    values = {k: page.field(k) for k in ("name", "nodes", "type", "description")}
    try:
        cluster = await cluster_uc.create_cluster(
            page.svc,
            page.user,
            values["name"],
            whole_number(values["nodes"], "the node count", "nodes"),
            description=values["description"],
            type=values["type"] or "production",
        )
    except JobyardError as exc:
        return await _clusters_page(
            page, error=exc.detail, values=values, status_code=exc.status_code
        )
    return page.redirect(f"/clusters/{cluster.id}")


def _cluster_id(raw: str) -> int:
    return path_id(raw, "cluster")


@router.get("/clusters/{cluster_id}")
async def cluster_page(page: Viewer, cluster_id: str) -> Response:
    who = page.user
    cluster = await cluster_uc.get_cluster(page.svc, who, _cluster_id(cluster_id))
    history = await cluster_uc.cluster_history(
        page.svc, who, cluster.id, limit=50, newest_first=True
    )
    members = await node_uc.list_nodes(page.svc, who, cluster=cluster.name)
    watching = await watchers.list_watchers(page.svc, who, "cluster", cluster.id)
    context: dict[str, Any] = {
        "watchers": watching,
        "watching": any(w.user_id == who.user_id for w in watching),
        "cluster": cluster,
        "history": history.items,
        "members": members,
        "online": sum(1 for n in members if n.online),
        "may_change": who.role.at_least(Role.USER),
    }
    if page.fragment:
        return await page.render("_cluster.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("cluster.html", **context)


@router.post("/clusters/{cluster_id}/terminate")
async def terminate(page: Poster, cluster_id: str) -> Response:
    cid = _cluster_id(cluster_id)
    await cluster_uc.terminate_cluster(page.svc, page.user, cid)
    return page.redirect(f"/clusters/{cid}", "done")


@router.post("/clusters/{cluster_id}/watch")
async def watch(page: Poster, cluster_id: str) -> Response:
    cid = _cluster_id(cluster_id)
    if page.field("watch") == "0":
        await watchers.unwatch(page.svc, page.user, "cluster", cid)
        return page.redirect(f"/clusters/{cid}", "unwatched")
    await watchers.watch(page.svc, page.user, "cluster", cid)
    return page.redirect(f"/clusters/{cid}", "watching")


@router.post("/clusters/{cluster_id}/scale")
async def scale(page: Poster, cluster_id: str) -> Response:
    cid = _cluster_id(cluster_id)
    nodes = whole_number(page.field("nodes"), "the node count", "nodes")
    await cluster_uc.update_cluster(page.svc, page.user, cid, {"nodes": nodes})
    return page.redirect(f"/clusters/{cid}", "saved")
