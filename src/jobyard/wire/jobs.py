"""Native API bodies for jobs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.values import Int64, Patch

Strict = ConfigDict(extra="forbid")


class TargetIn(BaseModel):
    model_config = Strict
    nodes: list[StrictStr] | None = None
    cluster: StrictStr | None = None
    tags: list[StrictStr] | None = None
    count: Int64 | None = None


class JobIn(BaseModel):
    """Create a job: a command on a target. ``draft`` saves it without starting it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "command": "uptime",
                    "nodes": ["web1", "web2"],
                    "quorum": "50%",
                    "run_timeout": 300,
                }
            ]
        },
    )
    command: Annotated[StrictStr, Field(max_length=65536)] | None = Field(
        default=None,
        description="A shell command, run with /bin/sh -c on each node (or give argv).",
        examples=["uptime"],
    )
    argv: list[StrictStr] | None = Field(
        default=None,
        description="The program and its arguments, run without a shell (or give command).",
        examples=[["systemctl", "restart", "nginx"]],
    )
    nodes: list[StrictStr] | None = Field(
        default=None,
        description="Node names (as their agents registered); a name no agent ever "
        "registered is refused unless allow_unknown_nodes.",
        examples=[["web1", "web2"]],
    )
    cluster: StrictStr | None = Field(
        default=None, description="Run on the nodes of this cluster.", examples=["etl"]
    )
    tags: list[StrictStr] | None = Field(
        default=None,
        description="Run on the nodes carrying every one of these tags (with count: that many).",
        examples=[["linux", "web"]],
    )
    count: Int64 | None = Field(
        default=None,
        description="How many nodes of the tags or cluster; alone: any that many online nodes.",
        examples=[3],
    )
    target: TargetIn | None = Field(
        default=None, description="The target nested ({nodes, cluster, tags, count}) instead."
    )
    quorum: Int64 | StrictStr | None = Field(
        default=None,
        description="How many nodes must accept before it runs: a count or a percentage "
        "(default 100%).",
        examples=["50%", 2],
    )
    run_timeout: Int64 | None = Field(
        default=None,
        description="Seconds a node may run the command before it is killed (default 3600).",
        examples=[300],
    )
    env: dict[StrictStr, StrictStr] | None = Field(
        default=None,
        description="Environment variables for the command.",
        examples=[{"RELEASE": "1.4.2"}],
    )
    dir: StrictStr | None = Field(
        default=None,
        description="Working directory on the nodes (default: a fresh directory per run).",
        examples=["/srv/app"],
    )
    capture_output: StrictBool = Field(
        default=True, description="Keep the nodes' stdout and stderr."
    )
    name: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        default=None, description="A name to find the job by.", examples=["nightly-backup"]
    )
    description: Annotated[StrictStr, Field(max_length=10000)] = Field(
        default="", description="Free text shown with the job."
    )
    draft: StrictBool = Field(
        default=False, description="Save it without starting it (submit it later)."
    )
    allow_unknown_nodes: StrictBool | None = Field(
        default=None,
        description="Accept node names no agent has registered yet (pre-declared nodes); "
        "by default such a name is refused with the list of known nodes.",
        examples=[True],
    )
    # Uploaded input files (POST /api/v1/files) written into each run's directory.
    input_files: list[Int64] | None = None
    # Globs of the files a run keeps as output files; default: every file the run writes.
    outputs: list[StrictStr] | None = None


class JobPatch(Patch):
    """Change a job. Fields left out stay as they are."""

    model_config = Strict
    not_null = frozenset({"description", "env", "capture_output", "count"})
    command: Annotated[StrictStr, Field(max_length=65536)] | None = None
    argv: list[StrictStr] | None = None
    nodes: list[StrictStr] | None = None
    cluster: StrictStr | None = None
    tags: list[StrictStr] | None = None
    count: Int64 | None = None
    quorum: Int64 | StrictStr | None = None
    run_timeout: Int64 | None = None
    env: dict[StrictStr, StrictStr] | None = None
    dir: StrictStr | None = None
    capture_output: StrictBool | None = None
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    description: Annotated[StrictStr, Field(max_length=10000)] | None = None


class StopIn(BaseModel):
    model_config = Strict
    reason: Annotated[StrictStr, Field(max_length=1000)] | None = None


class NodeRunOut(BaseModel):
    node: str
    status: str
    exit_code: int | None
    reason: str | None
    attempt: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


class JobOut(BaseModel):
    id: int
    name: str | None
    description: str
    command: str
    argv: list[str] | None
    target: dict[str, Any]
    nodes: list[str]
    quorum: str
    run_timeout: int | None
    env: dict[str, str]
    dir: str | None
    capture_output: bool
    input_files: list[dict[str, Any]] = []
    outputs: list[str] | None = None
    status: str
    outcome: str = Field(
        description="How the job went, from its status and node runs: draft, waiting, running, "
        "succeeded, partially_failed, failed, quorum_failed, timed_out or stopped.",
        examples=["partially_failed"],
    )
    outcome_label: str = Field(
        description="The status with what happened to the nodes, as the dashboard shows it.",
        examples=["complete · 1 of 3 failed"],
    )
    attempt: int
    created_by: int | None
    created_at: str
    updated_at: str
    submitted_at: str | None
    started_at: str | None
    finished_at: str | None
    node_states: dict[str, list[str]]
    node_runs: list[NodeRunOut]
    url: str


class EventOut(BaseModel):
    id: int
    type: str
    kind: str
    subject_id: int
    job_id: int | None
    node: str | None
    from_status: str | None
    to_status: str | None
    status: str | None
    actor: str | None
    reason: str | None
    data: dict[str, Any] | None
    created_at: str


class PageOut(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Any]
