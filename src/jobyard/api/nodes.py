"""Native nodes and clusters API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import parse_id
from jobyard.api.responses import JSON, iso
from jobyard.domain.records import Cluster, Node, Principal
from jobyard.service import clusters as cl
from jobyard.service import nodes as uc
from jobyard.service.context import Services
from jobyard.wire.values import Int64, Patch, described

router = APIRouter(prefix="/api/v1", tags=["nodes"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def node_json(n: Node) -> dict[str, Any]:
    return {
        "name": n.name,
        "status": "online" if n.online else "offline",
        "availability": n.availability.word,
        "connected": n.connected,
        "online": n.online,
        "busy": n.busy,
        "slots": n.slots,
        "tags": n.tags,
        "cluster": n.cluster,
        "incarnation": n.incarnation,
        "last_heartbeat": iso(n.last_heartbeat),
        "created_at": iso(n.created_at),
        "updated_at": iso(n.updated_at),
    }


def cluster_json(c: Cluster, base: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "status": c.status,
        "nodes": c.desired_nodes,
        "type": c.type,
        "terminate_on_idle": c.terminate_on_idle,
        "time_to_idle": c.time_to_idle,
        "created_by": c.created_by,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "available_since": iso(c.available_since),
        "terminated_at": iso(c.terminated_at),
        "url": f"{base}/api/v1/clusters/{c.id}",
    }


@router.get("/nodes", summary="Nodes and their state")
async def list_nodes(who: Who, svc: Svc, cluster: str | None = None) -> Response:
    return JSON([node_json(n) for n in await uc.list_nodes(svc, who, cluster)])


@router.get("/nodes/{name}", summary="One node")
async def get_node(name: str, who: Who, svc: Svc) -> Response:
    return JSON(node_json(await uc.get_node(svc, who, name)))


@router.get("/nodes/{name}/history", summary="A node's status history")
async def node_history(
    request: Request, name: str, who: Who, svc: Svc, page: int = 1, page_size: int = 50
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.node_history(svc, who, name, offset=offset, limit=limit)
    return JSON(render.paginated(request, result, page, limit, render.event))


CLUSTER = {
    "name": "The cluster's name, unique in the organization.",
    "nodes": "How many nodes it should have.",
    "description": "Free text shown with the cluster.",
    "type": "production or sandbox.",
    "terminate_on_idle": "Terminate it after time_to_idle seconds without a job.",
    "time_to_idle": "Seconds without a job before terminate_on_idle ends it.",
}


@described(CLUSTER)
class ClusterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    nodes: Int64 = 1
    description: StrictStr = ""
    type: StrictStr = "production"
    terminate_on_idle: StrictBool = False
    time_to_idle: Int64 = 3600


@described(CLUSTER)
class ClusterPatch(Patch):
    model_config = ConfigDict(extra="forbid")
    not_null = frozenset({"name", "nodes", "description", "terminate_on_idle", "time_to_idle"})
    name: StrictStr | None = None
    nodes: Int64 | None = None
    description: StrictStr | None = None
    terminate_on_idle: StrictBool | None = None
    time_to_idle: Int64 | None = None


@router.post("/clusters", status_code=201, summary="Create a cluster (a pool of nodes)")
async def create_cluster(body: ClusterIn, who: Who, svc: Svc) -> Response:
    c = await cl.create_cluster(
        svc,
        who,
        body.name,
        body.nodes,
        description=body.description,
        type=body.type,
        terminate_on_idle=body.terminate_on_idle,
        time_to_idle=body.time_to_idle,
    )
    return JSON(cluster_json(c, svc.settings.base_url), status_code=201)


@router.get("/clusters", summary="Clusters")
async def list_clusters(
    who: Who, svc: Svc, status: Annotated[str | None, Query()] = None
) -> Response:
    statuses = [s for s in (status or "").split(",") if s]
    items = await cl.list_clusters(svc, who, statuses or None)
    return JSON([cluster_json(c, svc.settings.base_url) for c in items])


def _cid(cluster_id: str) -> int:
    return parse_id(cluster_id, "cluster_id", "a cluster")


@router.get("/clusters/{cluster_id}", summary="One cluster")
async def get_cluster(cluster_id: str, who: Who, svc: Svc) -> Response:
    c = await cl.get_cluster(svc, who, _cid(cluster_id))
    return JSON(cluster_json(c, svc.settings.base_url))


@router.patch("/clusters/{cluster_id}", summary="Rename, describe or resize a cluster")
async def update_cluster(cluster_id: str, body: ClusterPatch, who: Who, svc: Svc) -> Response:
    changes = body.model_dump(exclude_unset=True)
    c = await cl.update_cluster(svc, who, _cid(cluster_id), changes)
    return JSON(cluster_json(c, svc.settings.base_url))


@router.delete("/clusters/{cluster_id}", summary="Terminate a cluster")
async def terminate_cluster(cluster_id: str, who: Who, svc: Svc) -> Response:
    c = await cl.terminate_cluster(svc, who, _cid(cluster_id))
    return JSON(cluster_json(c, svc.settings.base_url))


@router.get("/clusters/{cluster_id}/history", summary="A cluster's status history")
async def cluster_history(
    request: Request, cluster_id: str, who: Who, svc: Svc, page: int = 1, page_size: int = 50
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await cl.cluster_history(svc, who, _cid(cluster_id), offset=offset, limit=limit)
    return JSON(render.paginated(request, result, page, limit, render.event))
