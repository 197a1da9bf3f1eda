"""Where a job runs: named nodes, a cluster, a tag selector, or any N nodes (a bare count)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.nodes import Availability, availability

# \Z, not $: "$" also matches before a trailing newline.
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}\Z")


def check_node_name(name: str) -> str:
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise Invalid(
            f"{name!r} is not a node name: use letters, digits, '.', '_', ':', '@' and '-'",
            "nodes",
        )
    return name


@dataclass(frozen=True)
class Target:
    nodes: tuple[str, ...] = ()
    cluster: str | None = None
    tags: tuple[str, ...] = ()
    count: int | None = None

    def __post_init__(self) -> None:
        kinds = sum(bool(x) for x in (self.nodes, self.cluster, self.tags))
        if kinds == 0 and self.count is None:
            raise Invalid("a job needs a target: nodes, a cluster, tags, or a count", "target")
        if kinds > 1:
            raise Invalid("give only one of nodes, cluster or tags as the target", "target")
        if len(set(self.nodes)) != len(self.nodes):
            raise Invalid("a node is named twice in nodes", "nodes")
        for n in self.nodes:
            check_node_name(n)
        if self.count is not None and self.count < 1:
            raise Invalid("count must be at least 1", "count")
        if self.count is not None and self.nodes:
            raise Invalid("count applies to tags, a cluster or any node, not named nodes", "count")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nodes:
            out["nodes"] = list(self.nodes)
        if self.cluster:
            out["cluster"] = self.cluster
        if self.tags:
            out["tags"] = list(self.tags)
        if self.count is not None:
            out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(
            nodes=tuple(data.get("nodes") or ()),
            cluster=data.get("cluster"),
            tags=tuple(data.get("tags") or ()),
            count=data.get("count"),
        )


@dataclass(frozen=True)
class NodeInfo:
    """What the dispatcher needs to know of a node to pick it."""

    name: str
    online: bool
    busy: bool
    tags: frozenset[str] = field(default_factory=frozenset)
    cluster: str | None = None
    connected: bool = True

    @property
    def available(self) -> bool:
        return availability(self.online, self.connected, self.busy) is Availability.AVAILABLE


def select_nodes(target: Target, nodes: list[NodeInfo]) -> list[str]:
    """Resolve a target to node names. Explicit names are taken as given."""
    if target.nodes:
        return list(target.nodes)
    if target.cluster:
        members = [n for n in nodes if n.cluster == target.cluster]
    elif not target.tags:
        members = list(nodes)  # a bare count: any node of the organization
    else:
        wanted = set(target.tags)
        members = [n for n in nodes if wanted <= n.tags]
    members.sort(key=lambda n: (not n.available, not n.online, n.busy, n.name))
    if target.count is not None:
        available = [n for n in members if n.available]
        chosen = available[: target.count]
        if len(chosen) < target.count:
            # Fewer available than asked: take the best of the rest so quorum decides.
            rest = [n for n in members if n not in chosen]
            chosen += rest[: target.count - len(chosen)]
        return [n.name for n in chosen]
    return [n.name for n in members]
