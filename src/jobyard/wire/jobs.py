"""Native API bodies for jobs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from jobyard.wire.values import Int64, Patch, described

Strict = ConfigDict(extra="forbid")

TARGET = {
    "nodes": "Node names, as their agents registered.",
    "cluster": "Run on the nodes of this cluster.",
    "tags": "Run on the nodes carrying every one of these tags.",
    "count": "How many nodes of the tags or cluster; alone: any that many online nodes.",
}

# A job's fields, as a request sets them (JobIn's own descriptions say more).
JOB = {
    **TARGET,
    "command": "A shell command, run with /bin/sh -c on each node (or give argv).",
    "argv": "The program and its arguments, run without a shell (or give command).",
    "quorum": "How many nodes must accept before it runs: a count or a percentage.",
    "run_timeout": "Seconds a node may run the command before it is killed.",
    "env": "Environment variables for the command.",
    "secret_env": "Environment variables whose values are secret: stored encrypted, shown as "
    "•••• and masked in the output (•••• given back keeps the stored value).",
    "dir": "Working directory on the nodes (default: a fresh directory per run).",
    "capture_output": "Keep the nodes' stdout and stderr.",
    "name": "A name to find the job by.",
    "description": "Free text shown with the job.",
    "input_files": "Ids of uploaded files (POST /api/v1/files) written into each run's "
    "directory before the command starts.",
    "outputs": "Globs of the files a run keeps as output files (default: every file the run "
    "writes in its directory).",
}

NODE_RUN_OUT = {
    "node": "The node's name.",
    "status": "new, ready, running, succeeded, failed, nacked, unavailable, crashed, aborted, "
    "was_ready or timed_out.",
    "exit_code": "The command's exit code, once it ended.",
    "reason": "Why the node did not succeed, in words: busy, node is offline, not allowed: ..., "
    "node is unknown: ..., exit code 3, stopped by ...",
    "attempt": "The job's attempt this run belongs to (a result for another is refused).",
    "truncated": "Whether its output passed the cap and was cut.",
    "created_at": "When the run was made (ISO 8601).",
    "updated_at": "When the run last changed (ISO 8601).",
    "started_at": "When the node started the command (ISO 8601).",
    "finished_at": "When the run ended (ISO 8601).",
}

JOB_OUT = {
    **JOB,
    "id": "The job's id.",
    "target": "Where it runs: {nodes, cluster, tags, count}.",
    "nodes": "The nodes chosen for it (empty until it is submitted).",
    "input_files": "The input files written into each run's directory: id, name, size, sha256.",
    "status": "draft, onhold, new, voting, running, complete, quorum_failed, timed_out or "
    "aborted (Chef's words; outcome says how it went).",
    "attempt": "How many times voting was opened for it.",
    "created_by": "The user who made it, if a user did.",
    "created_at": "When it was made (ISO 8601).",
    "updated_at": "When it last changed (ISO 8601).",
    "submitted_at": "When it left draft or hold (ISO 8601).",
    "started_at": "When it started running (ISO 8601).",
    "finished_at": "When it ended (ISO 8601).",
    "node_states": "Node names by node-run status.",
    "node_runs": "Each node's part of the job.",
    "url": "This job in the native API.",
}

EVENT_OUT = {
    "id": "The event's id: increasing, usable as Last-Event-ID.",
    "type": "What happened: job.status, node_run.status, node.status, approval.requested ...",
    "kind": "What it is about: job, node, cluster, trigger ...",
    "subject_id": "The id of what it is about.",
    "job_id": "The job it belongs to, if any.",
    "node": "The node it is about, if any.",
    "from_status": "The status before, for a transition.",
    "to_status": "The status after, for a transition.",
    "status": "The status after (the same as to_status).",
    "actor": "Who or what caused it: a user, an agent, the scheduler ...",
    "reason": "Why, in words.",
    "data": "More about it, by event type.",
    "created_at": "When it happened (ISO 8601).",
}

PAGE_OUT = {
    "count": "How many items match, over every page.",
    "next": "The URL of the next page, or null on the last.",
    "previous": "The URL of the previous page, or null on the first.",
    "results": "The items of this page, in a stable order.",
}


@described(TARGET)
class TargetIn(BaseModel):
    model_config = Strict
    nodes: list[StrictStr] | None = None
    cluster: StrictStr | None = None
    tags: list[StrictStr] | None = None
    count: Int64 | None = None


@described(JOB)
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
    secret_env: dict[StrictStr, StrictStr] | None = Field(
        default=None,
        description="Environment variables whose values are secret: stored encrypted, shown "
        "as •••• and masked in the output (•••• given back keeps the stored value).",
        examples=[{"DB_PASSWORD": "s3cr3t"}],
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
    input_files: list[Int64] | None = None
    outputs: list[StrictStr] | None = Field(default=None, examples=[["report/*.html"]])


@described(JOB)
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
    secret_env: dict[StrictStr, StrictStr] | None = None
    dir: StrictStr | None = None
    capture_output: StrictBool | None = None
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    description: Annotated[StrictStr, Field(max_length=10000)] | None = None


class StopIn(BaseModel):
    model_config = Strict
    reason: Annotated[StrictStr, Field(max_length=1000)] | None = Field(
        default=None, description="Why it is stopped, kept in its history.", examples=["wrong tag"]
    )


@described(NODE_RUN_OUT)
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


@described(JOB_OUT)
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
    secret_env: list[str] = Field(
        default=[], description="The names in env whose values are secret (shown as ••••)."
    )
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


@described(EVENT_OUT)
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


@described(PAGE_OUT)
class PageOut(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Any]
