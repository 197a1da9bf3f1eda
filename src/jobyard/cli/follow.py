"""Following a job live: its nodes' output as it arrives, their states, and Ctrl-C.

One streaming request (``GET /api/v1/jobs/{id}/events?output=true``) carries the job's
events and output; a reader thread hands them to the main thread, which stays free to
take Ctrl-C. Up to ``TABLE_MAX`` nodes the live view is a table of nodes; above, a line
of counts per state and a progress bar. At the end, a table of the nodes that did not
succeed.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jobyard.client import ApiError, Client
from jobyard.client.http import FINISHED
from jobyard.domain.jobs import NodeRunStatus, job_succeeded
from jobyard.domain.outcomes import RunOutcome, Tone, run_outcome, tone_of

# Above this many nodes the live view is a summary instead of a row per node.
TABLE_MAX = 20
BAR_WIDTH = 30
TONE_STYLE = {
    Tone.OK: "green",
    Tone.BAD: "red",
    Tone.WARN: "yellow",
    Tone.LIVE: "cyan",
    Tone.IDLE: "dim",
}
# Exit codes of `jobyard run` and `jobyard job --follow` (docs/cli.md has the full table).
EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_DETACHED = 130


def styled(word: str, text: str | None = None) -> str:
    tone = tone_of(word)
    shown = escape(word if text is None else text)
    return shown if tone is Tone.IDLE else f"[{TONE_STYLE[tone]}]{shown}[/]"


def job_status(job: dict[str, Any]) -> str:
    """The job's status with its outcome, coloured by the outcome: complete · 3 of 3 failed."""
    return styled(job.get("outcome") or job["status"], job.get("outcome_label") or job["status"])


def node_table(runs: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("node", "state", "exit", "reason"):
        table.add_column(col)
    for run in runs:
        code = "" if run.get("exit_code") is None else str(run["exit_code"])
        table.add_row(
            escape(run["node"]), styled(run["status"]), code, escape(run.get("reason") or "")
        )
    return table


def succeeded(job: dict[str, Any]) -> bool:
    """knife-push's exit rule: complete, and every node succeeded, nacked or was unavailable."""
    runs = [NodeRunStatus(r["status"]) for r in job["node_runs"]]
    return job["status"] == "complete" and job_succeeded(runs)


@dataclass
class View:
    """What the follower knows of the job, updated from its events."""

    job: dict[str, Any]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.runs = {r["node"]: dict(r) for r in self.job["node_runs"]}

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "node_run.status" and event.get("node") in self.runs:
            run = self.runs[event["node"]]
            run["status"] = event.get("to_status") or run["status"]
            if event.get("reason"):
                run["reason"] = event["reason"]
        elif kind == "job.status" and event.get("to_status"):
            self.job["status"] = event["to_status"]

    @property
    def finished(self) -> bool:
        return self.job["status"] in FINISHED

    def summary(self) -> RenderableType:
        counts = Counter(r["status"] for r in self.runs.values())
        total = len(self.runs) or 1
        done = sum(n for s, n in counts.items() if run_outcome(s) is not RunOutcome.PENDING)
        filled = round(BAR_WIDTH * done / total)
        bar = Text("█" * filled + "░" * (BAR_WIDTH - filled), style="cyan")
        states = " · ".join(f"{styled(s)} {n}" for s, n in sorted(counts.items()))
        head = Text.from_markup(f"job {self.job['id']}: {styled(self.job['status'])}  ")
        return Group(
            head + Text.from_markup(states),
            bar + Text(f" {done}/{len(self.runs)} nodes done"),
        )

    def live(self) -> RenderableType:
        if len(self.runs) > TABLE_MAX:
            return self.summary()
        title = f"job {self.job['id']}: {styled(self.job['status'])}"
        return node_table(list(self.runs.values()), title)


class Printer:
    """Output chunks as whole lines, each prefixed by its node unless told not to."""

    def __init__(
        self, console: Console, *, prefix: bool, nodes: set[str] | None, quiet: bool
    ) -> None:
        self.console = console
        self.prefix = prefix
        self.nodes = nodes
        self.quiet = quiet
        self.partial: dict[tuple[str, str], str] = {}
        self.seen: dict[tuple[str, str], int] = {}
        self.width = 0

    def take(self, data: dict[str, Any]) -> None:
        node, stream, text = data["node"], data["stream"], data.get("data") or ""
        key = (node, stream)
        if data.get("offset") == 0:  # what was stored before: skip what we printed
            text = text[self.seen.get(key, 0) :]
        self.seen[key] = self.seen.get(key, 0) + len(text)
        if self.quiet or (self.nodes is not None and node not in self.nodes) or not text:
            return
        self.width = max(self.width, len(node))
        lines = (self.partial.pop(key, "") + text).split("\n")
        if lines[-1]:
            self.partial[key] = lines[-1]
        for line in lines[:-1]:
            self._line(node, stream, line)

    def _line(self, node: str, stream: str, line: str) -> None:
        if not self.prefix:
            self.console.out(line, highlight=False)
            return
        mark = "!" if stream == "stderr" else "|"
        style = "red" if stream == "stderr" else "dim"
        out = Text(f"{node:<{self.width}} ", style="bold")
        out.append(f"{mark} ", style=style)
        out.append(Text.from_ansi(line))
        self.console.print(out, soft_wrap=True, highlight=False)

    def flush(self) -> None:
        for (node, stream), rest in sorted(self.partial.items()):
            self._line(node, stream, rest)
        self.partial.clear()


_END = object()


def _read(client: Client, job_id: int, inbox: queue.Queue[Any], after: int) -> None:
    try:
        for name, data in client.events(job_id, output=True, after=after):
            inbox.put((name, data))
    except ApiError as exc:
        inbox.put(exc)
    inbox.put(_END)


def follow(
    client: Client,
    job: dict[str, Any],
    console: Console,
    err: Console,
    *,
    prefix: bool = True,
    nodes: set[str] | None = None,
    quiet: bool = False,
) -> int:
    """Follow a job until it ends (or the user detaches); returns the exit code."""
    view = View(job)
    printer = Printer(console, prefix=prefix, nodes=nodes, quiet=quiet)
    last = 0
    stopping = False
    while not view.finished:
        inbox: queue.Queue[Any] = queue.Queue()
        reader = threading.Thread(
            target=_read, args=(client, view.job["id"], inbox, last), daemon=True
        )
        reader.start()
        try:
            # Drawn from this thread only, when something changed: Rich's refresh thread
            # raced the end of the view and now and then left its title line on screen.
            with Live(view.live(), console=console, auto_refresh=False, transient=True) as live:
                while True:
                    try:
                        item = inbox.get(timeout=0.25)
                    except queue.Empty:
                        continue
                    if item is _END:
                        break
                    if isinstance(item, ApiError):
                        raise item
                    name, data = item
                    if name == "output":
                        printer.take(data)
                        continue
                    if isinstance(data.get("id"), int):
                        last = max(last, data["id"])
                    view.apply(data)
                    live.update(view.live(), refresh=True)
        except KeyboardInterrupt:
            if stopping or _ask_detach(console, err, view.job["id"]):
                _detached(err, view.job["id"])
                return EXIT_DETACHED
            stopping = True
            client.stop_job(view.job["id"], "stopped from the command line (Ctrl-C)")
            err.print(f"stopping job {view.job['id']}…")
            continue
        if not view.finished:  # the stream ended early (server restart): read the job
            fresh = client.get_job(view.job["id"])
            view = View(fresh)
    printer.flush()
    final = client.get_job(view.job["id"])
    failed = [r for r in final["node_runs"] if r["status"] != "succeeded"]
    console.print(f"job {final['id']}: {job_status(final)}")
    if failed:
        console.print(node_table(failed))
    return EXIT_OK if succeeded(final) else EXIT_JOB_FAILED


def _ask_detach(console: Console, err: Console, job_id: int) -> bool:
    """Ask once: detach (True) or stop the job (False). A second Ctrl-C detaches."""
    try:
        err.print(
            f"\njob {job_id} is still running. [bold]d[/]etach (it goes on) or [bold]s[/]top it? "
            "\\[d/s] ",
            end="",
        )
        answer = console.input("") if console.is_terminal else input()
    except (KeyboardInterrupt, EOFError):
        return True
    return not answer.strip().lower().startswith("s")


def _detached(err: Console, job_id: int) -> None:
    err.print(
        f"\ndetached: job {job_id} goes on. Follow it with `jobyard job {job_id} --follow`, "
        f"stop it with `jobyard stop {job_id}`."
    )
