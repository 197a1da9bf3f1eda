"""Reading the dashboard's forms: words, numbers, environments and targets, with errors
that name the field to fix."""

from __future__ import annotations

import re
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.secrets import MASK, is_sealed, secret_names
from jobyard.domain.targets import Target
from jobyard.service.secrets import merge_env
from jobyard.web.page import Page
from jobyard.wire.values import unstorable

_SPLIT = re.compile(r"[\s,]+")
TARGET_KINDS = ("nodes", "cluster", "tags", "any")


def split(text: str) -> tuple[str, ...]:
    """Words separated by spaces or commas."""
    return tuple(p for p in _SPLIT.split(text.strip()) if p)


def int_field(page: Page, name: str, label: str) -> int | None:
    raw = page.field(name)
    if not raw:
        return None
    return whole_number(raw, label, name)


def whole_number(raw: str, label: str, name: str) -> int:
    """A typed whole number that the database can hold."""
    try:
        number = int(raw) if len(raw) <= 40 else None
    except ValueError:
        number = None
    if number is None:
        raise Invalid(f"{label} must be a whole number, not {raw[:40]!r}", name)
    storable(number, name)
    return number


def storable(value: Any, name: str) -> Any:
    """``value`` (typed, or JSON typed into a field), refused when the database cannot hold it."""
    problem = unstorable(value, name)
    if problem is not None:
        raise Invalid(problem, name)
    return value


def number_field(page: Page, name: str, label: str) -> float | None:
    raw = page.field(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Invalid(f"{label} must be a number, not {raw!r}", name) from None


def raw_field(page: Page, name: str) -> str:
    """A posted field as typed (not stripped: multi-line text keeps its lines)."""
    value = page.form.get(name, "") if page.form is not None else ""
    return value if isinstance(value, str) else ""


def env_from(text: str) -> dict[str, str]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped)."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Invalid(f"environment line {number} needs the form NAME=value", "env")
        env[key.strip()] = value
    return env


def env_text(env: dict[str, str]) -> str:
    """The plain variables, as the form shows them (secrets are in ``secret_env_text``)."""
    return "\n".join(f"{k}={v}" for k, v in env.items() if not is_sealed(v))


def secret_env_text(env: dict[str, str]) -> str:
    """The secret variables, each shown as ``NAME=••••`` (which keeps it when saved)."""
    return "\n".join(f"{k}={MASK}" for k in secret_names(env))


def env_of_form(page: Page, stored: dict[str, str]) -> dict[str, str]:
    """The environment the form gives, secret values sealed (``••••`` keeps one stored)."""
    return merge_env(
        page.svc.secrets,
        stored,
        env_from(raw_field(page, "env")),
        env_from(raw_field(page, "secret_env")),
    )


def target_from(page: Page, *, optional: bool = False) -> Target | None:
    """The target the form's target fields describe (None for "none" when optional)."""
    kind = page.field("target_kind") or ("none" if optional else "nodes")
    if optional and kind == "none":
        return None
    count = int_field(page, "count", "the node count")
    if kind == "nodes":
        nodes = split(page.field("nodes"))
        if not nodes:
            raise Invalid("name at least one node (separate names by spaces or commas)", "nodes")
        return Target(nodes=nodes)
    if kind == "cluster":
        if not page.field("cluster"):
            raise Invalid("choose the cluster to run on", "cluster")
        return Target(cluster=page.field("cluster"), count=count)
    if kind == "tags":
        tags = split(page.field("tags"))
        if not tags:
            raise Invalid("give at least one tag", "tags")
        return Target(tags=tags, count=count)
    if kind == "any":
        if count is None:
            raise Invalid("say how many nodes to run on", "count")
        return Target(count=count)
    raise Invalid(f"unknown target kind {kind!r}", "target_kind")


def target_values(target: dict[str, Any] | None, *, empty: str = "nodes") -> dict[str, str]:
    """The target fields of a form, filled from a stored target (JSON form)."""
    target = target or {}
    kind = (
        "nodes"
        if target.get("nodes")
        else "cluster"
        if target.get("cluster")
        else "tags"
        if target.get("tags")
        else "any"
        if target.get("count")
        else empty
    )
    return {
        "target_kind": kind,
        "nodes": " ".join(target.get("nodes") or []),
        "cluster": target.get("cluster") or "",
        "tags": " ".join(target.get("tags") or []),
        "count": "" if target.get("count") is None else str(target["count"]),
    }


def target_words(target: dict[str, Any] | None) -> str:
    """A target in a few words, for lists."""
    if not target:
        return "chosen at run time"
    count = f" ({target['count']} of them)" if target.get("count") else ""
    if target.get("nodes"):
        return ", ".join(target["nodes"])
    if target.get("cluster"):
        return f"cluster {target['cluster']}{count}"
    if target.get("tags"):
        return f"tags {', '.join(target['tags'])}{count}"
    return f"any {target.get('count', 1)} nodes"
