"""The routers of tasks, schedules, stacks, triggers, hooks and people's job actions.

Included before the jobs router, so that ``DELETE /api/v1/jobs/finished`` is matched
before ``DELETE /api/v1/jobs/{job_id}``.
"""

from __future__ import annotations

from fastapi import APIRouter

from jobyard.api import approvals, hooks, schedules, stacks, tasks, triggers

ROUTERS: list[APIRouter] = [
    approvals.router,
    tasks.router,
    schedules.router,
    stacks.router,
    stacks.runs_router,
    triggers.router,
    hooks.router,
]
