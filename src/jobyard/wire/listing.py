"""What the command line prints with ``-o json`` or ``-o yaml``: the API's own shapes,
wrapped so that every read command prints an object with stable keys (docs/cli.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobyard.wire.jobs import EventOut, JobOut


class NodeOut(BaseModel):
    """A node as ``GET /api/v1/nodes`` shows it."""

    name: str = Field(description="The name its agent registered.", examples=["web1"])
    status: str = Field(description="online or offline.", examples=["online"])
    availability: str = Field(
        description="available (online and idle) or unavailable.", examples=["available"]
    )
    online: bool
    busy: bool
    tags: list[str]
    cluster: str | None
    incarnation: str | None
    last_heartbeat: str | None
    created_at: str
    updated_at: str


class TaskOut(BaseModel):
    """A task as ``GET /api/v1/tasks`` shows it (the keys the CLI relies on; more may come)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    type: str
    arguments: list[dict[str, Any]]


class JobDetail(JobOut):
    """``jobyard job N -o json``: the job, and its status history oldest first."""

    history: list[EventOut]


class JobsList(BaseModel):
    """``jobyard jobs -o json``: how many match, and the newest first."""

    count: int
    results: list[JobOut]


class NodesList(BaseModel):
    count: int
    results: list[NodeOut]


class TasksList(BaseModel):
    count: int
    results: list[TaskOut]


# The schema of each read command's -o json output.
SCHEMAS: dict[str, type[BaseModel]] = {
    "jobs": JobsList,
    "job": JobDetail,
    "nodes": NodesList,
    "tasks": TasksList,
}
