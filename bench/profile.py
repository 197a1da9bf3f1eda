"""Where the server's time goes: py-spy samples of a running process, summarized.

``spy(pid, name, out_dir)`` records the process while the block runs (``py-spy record
--gil``: only the thread holding the GIL, so the figures are Python CPU time, not waiting)
into ``out_dir/name.txt`` (collapsed stacks, flamegraph input) and prints the functions with
the largest share of samples, inclusive and self, as ``file:function``, then the samples by
layer: what the sampled thread was doing (the innermost frame's package: HTTP framework,
SQLAlchemy, the driver hand-off, jobyard's own code by layer ...) and for whom (a request,
a background loop).

    python -m bench.profile STACKS.txt [--top N]   (summarize a recorded file again)
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SHORTEN = (
    (re.compile(r"^.*/site-packages/"), ""),
    (re.compile(r"^.*/src/jobyard/"), "jobyard/"),
    (re.compile(r"^.*/lib/python3\.\d+/"), "stdlib/"),
)


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for pattern, repl in _SHORTEN:
        path = pattern.sub(repl, path)
    return f"{path}:{m.group('func')}"


def summarize(path: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += n
        if frames:
            self_time[frames[-1]] += n
    if not total:
        return {"inclusive": [], "self": []}

    def share(c: Counter[str], only_ours: bool) -> list[tuple[str, float]]:
        items = [(k, v / total) for k, v in c.most_common() if not only_ours or "jobyard/" in k]
        return items[:top]

    return {
        "samples": [("total", float(total))],
        "jobyard_inclusive": share(inclusive, True),
        "self": share(self_time, False),
    }


# The innermost frame's file decides the layer; the first pattern that matches wins.
LAYERS = (
    (
        "driver hand-off (aiosqlite/asyncpg, greenlet, event loop, threads)",
        re.compile(
            r"aiosqlite/|asyncpg/|greenlet|sqlalchemy/util/(_?concurrency|queue)|"
            r"stdlib/asyncio/|stdlib/(threading|queue|selectors)\.py|stdlib/concurrent/|"
            r"uvloop/"
        ),
    ),
    (
        "SQLAlchemy result rows and type processing",
        re.compile(
            r"sqlalchemy/engine/(result|row|cursor)\.py|sqlalchemy/sql/(type_api|sqltypes)\.py|"
            r"jobyard/store/schema\.py|stdlib/json/"
        ),
    ),
    ("SQLAlchemy statement building, cache keys, compile, execute", re.compile(r"sqlalchemy/")),
    (
        "HTTP: uvicorn, starlette, FastAPI (routing, dependencies)",
        re.compile(r"uvicorn/|starlette/|fastapi/|httptools|h11/"),
    ),
    ("pydantic", re.compile(r"pydantic")),
    ("jobyard api/ and web/ (middleware, auth, render)", re.compile(r"jobyard/(api|web)/")),
    ("jobyard service/ and domain/", re.compile(r"jobyard/(service|domain)/")),
    ("jobyard store/ (row mapping)", re.compile(r"jobyard/store/")),
    ("jobyard dispatch/ and wire/", re.compile(r"jobyard/(dispatch|wire)/")),
    ("websockets", re.compile(r"websockets/")),
    ("JSON (orjson) and other C code", re.compile(r"orjson|<built-in>|^\?")),
)
# For whom: a frame of a request or of a loop somewhere in the stack. Code that runs in
# SQLAlchemy's greenlet (statement execution) has only the greenlet's own frames:
# "unattributed", whoever called it.
WHO = (
    ("background loops", re.compile(r"jobyard/dispatch/")),
    ("requests", re.compile(r"jobyard/api/|starlette/|fastapi/|uvicorn/protocols/")),
)


def _layer(frame: str) -> str:
    for label, pattern in LAYERS:
        if pattern.search(frame):
            return label
    return "other (stdlib, dataclasses, prometheus ...)"


def by_layer(path: Path) -> list[tuple[str, str, float]]:
    """Share of samples by (for whom, layer of the innermost frame), largest first."""
    counts: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        who = next((w for w, p in WHO if any(p.search(f) for f in frames)), "unattributed")
        counts[(who, _layer(frames[-1]))] += int(count)
        total += int(count)
    return [(w, layer, n / total) for (w, layer), n in counts.most_common()] if total else []


def print_layers(path: Path) -> None:
    print("  by layer (innermost frame), share of samples:")
    for who, layer, share in by_layer(path):
        if share >= 0.005:
            print(f"    {share * 100:5.1f}%  {who}: {layer}")
    sys.stdout.flush()


def print_summary(summary: dict[str, list[tuple[str, float]]], title: str) -> None:
    total = int(summary.get("samples", [("", 0.0)])[0][1])
    print(f"\nhot spots, {title} ({total} samples of the GIL-holding thread):")
    print("  jobyard functions, inclusive share:")
    for name, share in summary.get("jobyard_inclusive", []):
        print(f"    {share * 100:5.1f}%  {name}")
    print("  any function, self share:")
    for name, share in summary.get("self", []):
        print(f"    {share * 100:5.1f}%  {name}")
    sys.stdout.flush()


@contextlib.contextmanager
def spy(pid: int, name: str, out_dir: str | None, rate: int = 250) -> Iterator[None]:
    """Record ``pid`` with py-spy while the block runs; print where the time went."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not out_dir or not Path(exe).exists():
        if out_dir:
            print("(py-spy is not installed: no profile)")
        yield
        return
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    out = target / f"{name}.txt"
    proc = subprocess.Popen(
        [exe, "record", "--gil", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if out.exists():
        print_summary(summarize(out), name)
        print_layers(out)
    else:
        print(f"(py-spy wrote no profile: {err.decode(errors='replace')[-300:]})")


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarize py-spy collapsed stacks.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print_summary(summarize(args.path, args.top), str(args.path))
    print_layers(args.path)


if __name__ == "__main__":
    main()
