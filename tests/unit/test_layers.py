"""The layers of DESIGN.md, checked on the imports of the source tree.

Each layer imports only the layers below it; ``api`` and ``web`` sit side by side on top
and import neither each other nor the command line; the agent never imports the server.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "jobyard"

# layer -> the jobyard packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "domain": {"store", "notify", "service", "dispatch", "api", "web", "cli", "agent"},
    "store": {"service", "dispatch", "api", "web", "cli", "agent"},
    "service": {"dispatch", "api", "web", "cli", "agent"},
    "dispatch": {"api", "web", "cli", "agent"},
    "api": {"web", "cli", "agent"},
    "web": {"api", "cli", "agent"},
    "agent": {"store", "service", "dispatch", "api", "web", "cli"},
}


def _imports(path: Path) -> set[str]:
    """The jobyard packages a module imports (``jobyard.X...`` -> ``X``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "jobyard" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = {
        str(path.relative_to(SRC)): sorted(_imports(path) & FORBIDDEN[layer])
        for path in sorted((SRC / layer).rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}
