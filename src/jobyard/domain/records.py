"""The rows the store hands to the service layer, as frozen dataclasses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.nodes import Availability, availability


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    name: str
    display_name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    display_name: str
    password_hash: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    email: str
    display_name: str
    role: Role
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    org_id: int
    user_id: int
    name: str
    role: str | None
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user (or an agent credential) acting in one organization."""

    org_id: int
    org_name: str
    user_id: int
    email: str
    display_name: str
    role: Role
    token_id: int | None = None

    @property
    def actor(self) -> str:
        return self.email


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    org_id: int
    name: str | None
    description: str
    command: str
    argv: list[str] | None
    target: dict[str, Any]
    quorum: str
    run_timeout: int | None
    env: dict[str, str]
    dir: str | None
    capture_output: bool
    status: JobStatus
    attempt: int
    meta: dict[str, Any]
    kind: str
    state: str | None
    result: Any
    arguments: Any
    task_id: int | None
    trigger_id: int | None
    cluster_id: int | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    deadline: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NodeRun:
    id: int
    job_id: int
    org_id: int
    node_name: str
    status: NodeRunStatus
    attempt: int
    exit_code: int | None
    reason: str | None
    truncated: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    org_id: int
    kind: str
    subject_id: int
    job_id: int | None
    node_name: str | None
    type: str
    from_status: str | None
    to_status: str | None
    actor: str | None
    reason: str | None
    data: dict[str, Any] | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    org_id: int
    name: str
    tags: list[str]
    cluster: str | None
    online: bool
    busy: bool
    incarnation: str | None
    replica: str | None
    last_heartbeat: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    connected: bool = True  # False: online, but its agent has not said hello since a restart
    slots: int = 1  # runs its agent takes at once

    @property
    def availability(self) -> Availability:
        return availability(self.online, self.connected, self.busy)


@dataclass(frozen=True, slots=True)
class Cluster:
    id: int
    org_id: int
    name: str
    description: str
    status: str
    desired_nodes: int
    type: str
    terminate_on_idle: bool
    time_to_idle: int
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    available_since: dt.datetime | None
    terminated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: int
    org_id: int
    job_id: int | None
    node_name: str
    name: str
    size: int
    md5: str
    storage_key: str
    created_at: dt.datetime
    sha256: str | None = None
    kind: str = "output"  # output (a run wrote it) | input (uploaded for jobs to read)
    uploaded_by: int | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a stable-ordered list, with the total count."""

    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class ChefKey:
    """A Chef user or client name of an organization, the jobyard user it stands for
    (with an optional narrower role) and its public key (PEM)."""

    id: int
    org_id: int
    user_id: int
    name: str
    role: str | None
    public_key: str
    created_at: dt.datetime
    email: str
    display_name: str
