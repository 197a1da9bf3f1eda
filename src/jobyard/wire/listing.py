"""What the command line prints with ``-o json`` or ``-o yaml``: the API's own shapes,
wrapped so that every read command prints an object with stable keys (docs/cli.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobyard.wire.jobs import EventOut, JobOut
from jobyard.wire.values import described


@described(
    {
        "online": "Whether its agent is connected (heartbeats within TTL).",
        "busy": "Whether its agent reported every slot taken.",
        "tags": "The tags its agent registered.",
        "cluster": "The cluster its agent joined, if any.",
        "incarnation": "Its agent's current process identity.",
        "last_heartbeat": "When it last said it lives (ISO 8601).",
        "created_at": "When it first registered (ISO 8601).",
        "updated_at": "When it last changed (ISO 8601).",
    }
)
class NodeOut(BaseModel):
    """A node as ``GET /api/v1/nodes`` shows it."""

    name: str = Field(description="The name its agent registered.", examples=["web1"])
    status: str = Field(description="online or offline.", examples=["online"])
    availability: str = Field(
        description="available (online and idle) or unavailable.", examples=["available"]
    )
    online: bool
    busy: bool
    slots: int = Field(description="Runs its agent takes at once (jobyard agent --slots).")
    tags: list[str]
    cluster: str | None
    incarnation: str | None
    last_heartbeat: str | None
    created_at: str
    updated_at: str


class TaskOut(BaseModel):
    """A task as ``GET /api/v1/tasks`` shows it (the keys the CLI relies on; more may come)."""

    model_config = ConfigDict(extra="allow")
    id: int = Field(description="The task's id.")
    name: str = Field(description="Its name.")
    type: str = Field(description="script, approval, input or notification.")
    arguments: list[dict[str, Any]] = Field(description="Its arguments.")


class JobDetail(JobOut):
    """``jobyard job N -o json``: the job, and its status history oldest first."""

    history: list[EventOut] = Field(description="Its events, oldest first.")


class JobsList(BaseModel):
    """``jobyard jobs -o json``: how many match, and the newest first."""

    count: int = Field(description="How many jobs match.")
    results: list[JobOut] = Field(description="The jobs, newest first.")


class NodesList(BaseModel):
    count: int = Field(description="How many nodes there are.")
    results: list[NodeOut] = Field(description="The nodes, by name.")


class TasksList(BaseModel):
    count: int = Field(description="How many tasks match.")
    results: list[TaskOut] = Field(description="The tasks.")


class TriggerOut(BaseModel):
    """A trigger as ``GET /api/v1/triggers`` shows it (the keys the CLI relies on)."""

    model_config = ConfigDict(extra="allow")
    id: int = Field(description="The trigger's id.")
    name: str | None = Field(description="Its name, unique in the organization, if any.")
    task_id: int | None = Field(description="The task it runs (or the stack's task).")
    stack_id: int | None = Field(description="The stack it runs (or runs its task on).")
    schedule_id: int = Field(description="The schedule whose slots it fires.")
    enabled: bool = Field(description="Whether it fires.")
    overlap: dict[str, Any] = Field(description="Its overlap policy: mode, limit, queue.")
    next_fire_at: str | None = Field(description="Its next slot (ISO 8601), if enabled.")


class FireOut(BaseModel):
    """One slot a trigger handled."""

    slot: str = Field(description="The slot's time (ISO 8601).")
    outcome: str = Field(description="fired (a job was made) or skipped.", examples=["fired"])
    job_id: int | None = Field(description="The job it made, if any.")
    reason: str | None = Field(
        description="Why it was skipped, or why its job waits (queued: ...).",
        examples=["queued: waiting for busy nodes: web1 (job 12)"],
    )
    created_at: str = Field(description="When the slot was handled (ISO 8601).")


class TriggersList(BaseModel):
    """``jobyard triggers -o json``."""

    count: int = Field(description="How many triggers there are.")
    results: list[TriggerOut] = Field(description="The triggers, by id.")


class TriggerDetail(TriggerOut):
    """``jobyard trigger REF -o json``: the trigger and its latest fires, newest first."""

    fires: list[FireOut] = Field(description="Its latest handled slots, newest first.")


class ChefKeyOut(BaseModel):
    name: str = Field(description="The Chef user or client name.")
    email: str = Field(description="The member it acts as.")
    role: str | None = Field(description="The role it is limited to, or null: the member's.")
    fingerprint: str = Field(description="The public key's fingerprint.")


class ChefKeysList(BaseModel):
    """``jobyard admin chef-key list -o json``."""

    count: int = Field(description="How many Chef names the organization has.")
    results: list[ChefKeyOut] = Field(description="The Chef names.")


class SettingsShown(BaseModel):
    """``jobyard config show -o json``: each setting by name (secrets shown as ••••)."""

    model_config = ConfigDict(extra="allow")
    database: str = Field(description="The database URL, password hidden.")
    data_dir: str = Field(description="Where jobyard keeps its files.")


class VersionOut(BaseModel):
    """``jobyard version -o json``."""

    version: str = Field(description="jobyard's version.")


# The schema of each read command's -o json output.
SCHEMAS: dict[str, type[BaseModel]] = {
    "jobs": JobsList,
    "job": JobDetail,
    "nodes": NodesList,
    "tasks": TasksList,
    "triggers": TriggersList,
    "trigger": TriggerDetail,
    "admin chef-key list": ChefKeysList,
    "config show": SettingsShown,
    "version": VersionOut,
}
