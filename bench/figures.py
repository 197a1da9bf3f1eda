"""Figures: percentiles, side-by-side tables, and a JSON record of a run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def num(value: float, digits: int = 0) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown), columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def save(path: str | None, name: str, data: dict[str, Any]) -> None:
    """Merge ``data`` under ``name`` into the JSON file at ``path`` (if one was given)."""
    if not path:
        return
    target = Path(path)
    existing: dict[str, Any] = {}
    if target.exists():
        existing = json.loads(target.read_text() or "{}")
    existing[name] = data
    target.write_text(json.dumps(existing, indent=2, default=str) + "\n")
