"""Definitions as files: read and check them, plan the changes, apply them, export.

- ``load(paths)``: YAML (``.yaml``/``.yml``) or TOML (``.toml``) files, or a directory of
  them, merged into one ``Definitions``; a mistake names the file, the line and the field.
- ``plan(client, desired, prune)``: what would be created, changed (field by field) and,
  with prune, deleted — only definitions that files managed before and no longer name.
- ``apply(client, plan, source)``: does it through the ordinary API, in dependency order,
  then records what the files manage (the dashboard marks those definitions).
- ``export(client)``: the current definitions in the same format; exporting and applying
  the export changes nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jobyard.client.http import Client
from jobyard.domain.secrets import MASK
from jobyard.wire.definitions import KINDS, Definitions, key_of

PATHS = {
    "schedules": "/api/v1/schedules",
    "tasks": "/api/v1/tasks",
    "stacks": "/api/v1/stacks",
    "triggers": "/api/v1/triggers",
    "webhooks": "/api/v1/webhooks",
}
# References by name in files, by id on the server: (field in files, kind, id field).
REFS: dict[str, list[tuple[str, str, str]]] = {
    "stacks": [("task", "tasks", "task_id")],
    "triggers": [
        ("schedule", "schedules", "schedule_id"),
        ("task", "tasks", "task_id"),
        ("stack", "stacks", "stack_id"),
    ],
}
# Never exported, never compared: the server's own bookkeeping, and secrets.
SERVER_FIELDS = {"secret"}
SUFFIXES = {".yaml", ".yml", ".toml"}


class DefinitionError(Exception):
    """A definition file is wrong: ``where`` is ``file:line`` and ``field`` the path."""

    def __init__(self, where: str, field: str, message: str) -> None:
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        self.where = where
        self.field = field
        self.message = message


# -- loading


def files_of(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            raise DefinitionError(str(path), "", "no such file or directory")
    if not found:
        raise DefinitionError(", ".join(map(str, paths)), "", "no .yaml, .yml or .toml files")
    return found


def load(paths: Iterable[Path]) -> Definitions:
    """Read and check every file; the definitions of all of them together."""
    merged: dict[str, list[Any]] = {kind: [] for kind in KINDS}
    seen: dict[tuple[str, str], str] = {}
    for path in files_of(paths):
        raw, lines = _parse(path)
        checked = _check(path, raw, lines)
        for kind in KINDS:
            for i, item in enumerate(getattr(checked, kind)):
                key = key_of(kind, item.model_dump())
                where = f"{path}:{lines.get((kind, i), 1)}"
                if (kind, key) in seen:
                    raise DefinitionError(
                        where, f"{kind}[{i}]", f"{key!r} is defined twice (also {seen[kind, key]})"
                    )
                seen[kind, key] = where
                merged[kind].append(item)
    return Definitions(**merged)


def _parse(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The document and the line of each node (by its path of keys and indexes)."""
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text), _toml_lines(text)
        except tomllib.TOMLDecodeError as exc:
            raise DefinitionError(str(path), "", f"not valid TOML: {exc}") from exc
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise DefinitionError(f"{path}:{line}", "", f"not valid YAML: {exc}") from exc
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _yaml_lines(node, (), lines)
    return (yaml.safe_load(text) or {}), lines


def _yaml_lines(node: Any, at: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*at, key.value)] = key.start_mark.line + 1
            _yaml_lines(value, (*at, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _yaml_lines(value, (*at, i), out)


def _toml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """TOML keeps no positions: find each ``[[kind]]`` table and the keys inside it."""
    out: dict[tuple[Any, ...], int] = {}
    counts: dict[str, int] = {}
    current: tuple[Any, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[[") and stripped.endswith("]]"):
            kind = stripped[2:-2].strip()
            index = counts.get(kind, 0)
            counts[kind] = index + 1
            current = (kind, index)
            out[current] = number
        elif "=" in stripped and current and not stripped.startswith("#"):
            out.setdefault((*current, stripped.split("=", 1)[0].strip()), number)
    return out


def _check(path: Path, raw: Any, lines: dict[tuple[Any, ...], int]) -> Definitions:
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}:1", "", "a file holds a mapping of kinds to lists")
    try:
        return Definitions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = 1
        for n in range(len(loc), -1, -1):  # the deepest part of the path that has a line
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        raise DefinitionError(f"{path}:{line}", field, first["msg"]) from exc


# -- planning


@dataclass
class Change:
    kind: str
    key: str
    action: str  # create | update | delete
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name: (now, wanted)
    body: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        head = f"{sign} {self.kind[:-1]} {self.key}"
        if self.action != "update":
            return head
        parts = [
            f"    {name}: {now!r} -> {wanted!r}"
            for name, (now, wanted) in sorted(self.fields.items())
        ]
        return "\n".join([head, *parts])


@dataclass
class Plan:
    changes: list[Change]
    desired: dict[str, list[dict[str, Any]]]
    current: dict[str, dict[str, dict[str, Any]]]

    @property
    def empty(self) -> bool:
        return not self.changes

    def describe(self) -> str:
        if self.empty:
            return "no changes: the server matches the files"
        counts = {
            a: sum(c.action == a for c in self.changes) for a in ("create", "update", "delete")
        }
        lines = [c.describe() for c in self.changes]
        summary = ", ".join(f"{n} to {a}" for a, n in counts.items() if n)
        return "\n".join([*lines, f"plan: {summary}"])


def current_state(client: Client) -> dict[str, dict[str, dict[str, Any]]]:
    """Every definition on the server, by kind and key."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in KINDS:
        items = client.all_pages(PATHS[kind])
        out[kind] = {key_of(kind, i): i for i in items if kind == "webhooks" or i.get("name")}
    return out


def _by_id(state: dict[str, dict[str, dict[str, Any]]], kind: str) -> dict[Any, str]:
    return {item["id"]: key for key, item in state[kind].items()}


def as_file(
    kind: str,
    item: dict[str, Any],
    state: dict[str, dict[str, dict[str, Any]]],
    fields: Iterable[str],
) -> dict[str, Any]:
    """A server object in the file's form: only ``fields``, ids turned into names."""
    out: dict[str, Any] = {}
    refs = {id_field: (name, target) for name, target, id_field in REFS.get(kind, [])}
    for name in fields:
        if name in SERVER_FIELDS:
            continue
        ref = next((r for r in refs.values() if r[0] == name), None)
        if ref is not None:
            id_field = next(i for i, r in refs.items() if r[0] == name)
            value = item.get(id_field)
            out[name] = _by_id(state, ref[1]).get(value) if value is not None else None
        elif name == "secret_env":
            # The server names its secrets; their values never leave it.
            out[name] = {n: MASK for n in item.get(name) or []}
        elif name in ("steps", "on_failure") and kind == "stacks" and name in item:
            value = item[name]
            out[name] = (
                _steps_by_name([value], state)[0]
                if name == "on_failure" and value
                else _steps_by_name(value, state)
            )
        elif name in item and name not in refs:
            out[name] = item[name]
    return out


def matches(have: Any, want: Any) -> bool:
    """Whether the server's value is what the file asks for: every key the file gives
    matches (keys it leaves out keep the server's defaults), lists element by element."""
    if isinstance(want, dict) and isinstance(have, dict):
        return all(matches(have.get(k), v) for k, v in want.items())
    if isinstance(want, str) and isinstance(have, dict):
        return have.get("name") == want  # an argument's shorthand: its name alone
    if isinstance(want, list) and isinstance(have, list):
        return len(want) == len(have) and all(
            matches(h, w) for h, w in zip(have, want, strict=True)
        )
    return bool(have == want)


def _steps_by_name(steps: Any, state: dict[str, dict[str, dict[str, Any]]]) -> Any:
    """A chain's steps with each task named, as files write them."""
    if not isinstance(steps, list):
        return steps
    names = _by_id(state, "tasks")
    out = []
    for step in steps:
        if isinstance(step, dict):
            step = {k: v for k, v in step.items() if v is not None}
            if "task_id" in step:
                step["task"] = names.get(step.pop("task_id"), step.get("task"))
        out.append(step)
    return out


def plan(client: Client, desired: Definitions, *, prune: bool) -> Plan:
    state = current_state(client)
    managed = {(m["kind"], m["key"]) for m in client.request("GET", "/api/v1/definitions/managed")}
    wanted: dict[str, list[dict[str, Any]]] = {
        kind: [i.model_dump(exclude_unset=True) for i in getattr(desired, kind)] for kind in KINDS
    }
    changes: list[Change] = []
    for kind in KINDS:
        for item in wanted[kind]:
            key = key_of(kind, item)
            now = state[kind].get(key)
            if now is None:
                changes.append(Change(kind, key, "create", body=item))
                continue
            have = as_file(kind, now, state, item.keys())
            diff = {
                name: (have.get(name), value)
                for name, value in item.items()
                if name not in SERVER_FIELDS and not matches(have.get(name), value)
            }
            if diff:
                changes.append(Change(kind, key, "update", fields=diff, body=item))
    if prune:
        named = {(kind, key_of(kind, i)) for kind in KINDS for i in wanted[kind]}
        for kind in reversed(KINDS):
            for key in sorted(state[kind]):
                if (kind, key) in managed and (kind, key) not in named:
                    changes.append(Change(kind, key, "delete"))
    return Plan(changes, wanted, state)


# -- applying


def _to_server(
    kind: str, body: dict[str, Any], state: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    out = dict(body)
    for name, target, id_field in REFS.get(kind, []):
        if name in out:
            ref = out.pop(name)
            if ref is None:
                out[id_field] = None
                continue
            found = state[target].get(ref)
            if found is None:
                raise DefinitionError(kind, f"{name}", f"no {target[:-1]} named {ref!r}")
            out[id_field] = found["id"]
    return out


def apply(client: Client, the_plan: Plan, source: str) -> list[str]:
    """Carry out the plan (creates and updates in dependency order, then deletions) and
    record what the files manage now. Returns one line per change done."""
    state = the_plan.current
    done: list[str] = []
    for kind in KINDS:
        for change in (c for c in the_plan.changes if c.kind == kind and c.action != "delete"):
            body = _to_server(kind, change.body, state)
            if change.action == "create":
                made = client.request("POST", PATHS[kind], body)
                state[kind][change.key] = made
            else:
                ident = state[kind][change.key]["id"]
                patch = {k: v for k, v in body.items() if k in _server_names(kind, change)}
                state[kind][change.key] = client.request("PATCH", f"{PATHS[kind]}/{ident}", patch)
            done.append(change.describe().splitlines()[0])
    for change in (c for c in the_plan.changes if c.action == "delete"):
        ident = state[change.kind][change.key]["id"]
        client.request("DELETE", f"{PATHS[change.kind]}/{ident}")
        del state[change.kind][change.key]
        done.append(change.describe())
    kinds = {kind: [key_of(kind, i) for i in the_plan.desired[kind]] for kind in KINDS}
    client.request("PUT", "/api/v1/definitions/managed", {"source": source, "kinds": kinds})
    return done


def _server_names(kind: str, change: Change) -> set[str]:
    """The fields of a PATCH body: the changed ones, references under their id names."""
    names = set(change.fields)
    for name, _target, id_field in REFS.get(kind, []):
        if name in names:
            names.add(id_field)
    return names


# -- exporting


def export(client: Client) -> dict[str, list[dict[str, Any]]]:
    """The server's definitions in the file format (fields the format knows, no secrets)."""
    state = current_state(client)
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        model = Definitions.model_fields[kind].annotation.__args__[0]  # type: ignore[union-attr]
        # Secret values are exported inside env as ••••, which apply reads as "keep".
        names = [n for n in model.model_fields if n not in SERVER_FIELDS | {"secret_env"}]
        items = [as_file(kind, item, state, names) for _key, item in sorted(state[kind].items())]
        cleaned = [{k: v for k, v in i.items() if v is not None} for i in items]
        if cleaned:
            out[kind] = cleaned
    return out


def dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(document, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
