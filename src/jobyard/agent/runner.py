"""The agent's side of the protocol: commit votes, runs, aborts, results, reconnects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import logging
import os
import random
import shlex
import shutil
import signal
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from jobyard.agent.asking import InputDesk
from jobyard.agent.journal import Journal, every_journal, server_journal
from jobyard.agent.process import Process, kill_group, process_has_marker
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.agent")

OUTPUT_CAP = 1_000_000
FILE_CAP = 50_000_000
RESEND_AFTER = 10.0
MAX_BACKOFF = 30.0


@dataclass
class AgentConfig:
    server: str
    token: str
    name: str
    tags: list[str] = field(default_factory=list)
    cluster: str | None = None
    allow: list[str] = field(default_factory=list)
    state_dir: Path = Path(".jobyard-agent")
    max_jobs: int = 1
    abort_grace: float = 10.0
    shell: str = "/bin/sh"

    @property
    def ws_url(self) -> str:
        base = self.server.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        return base + wire.PATH


@dataclass
class Run:
    job: int
    attempt: int
    spec: dict[str, Any]
    journal: Journal  # of the server that sent it
    process: Process | None = None
    task: asyncio.Task[None] | None = None
    sent: int = 0
    truncated: bool = False
    aborting: bool = False


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.incarnation = uuid.uuid4().hex
        # The journal of the server connected to (or last connected to): picked from the
        # identity the server sends in the handshake, before hello.
        self.journal: Journal | None = None
        self._journals: dict[str, Journal] = {}
        self.runs: dict[tuple[int, int], Run] = {}
        self.ws: ClientConnection | None = None
        self.heartbeat_interval = 5.0
        self.max_backoff = MAX_BACKOFF
        self.stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self.desk = InputDesk(self._relay_input, lambda job, attempt: (job, attempt) in self.runs)
        self._last_resend = 0.0
        self.backlog: deque[str] = deque()  # output frames not yet handed to a connection
        self._delivering: set[tuple[int, int]] = set()

    # -- lifecycle
    async def run_forever(self) -> None:
        self._kill_orphans()
        await self.desk.start()
        try:
            await self._connect_forever()
        finally:
            await self.desk.close()

    async def _relay_input(self, request: dict[str, Any]) -> None:
        await self._send(wire.encode("input_request", **request))

    async def _connect_forever(self) -> None:
        if not self.config.allow:
            log.warning("no --allow patterns: this agent runs any command it is sent")
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self._session()
                delay = 0.5
            except websockets.InvalidStatus as exc:
                if exc.response.status_code not in (401, 403):
                    log.warning("connection to %s refused: %s", self.config.server, exc)
                else:  # tried again, slowly: the token may be replaced on the server's side
                    log.error("the server refused this agent's token (revoked or unknown)")
                    delay = max(delay, 5.0)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.warning("connection to %s lost: %s", self.config.server, exc)
            except _Refused as exc:
                log.error("the server refused this agent: %s", exc)
                delay = max(delay, 5.0)
            if self.connected.is_set():
                delay = 0.5  # that connection worked: back off afresh, not from last time's
            self.connected.clear()
            if self.stopping.is_set():
                break
            # Exponential backoff with full jitter, capped so that a reconnect lands within
            # the server's TTL + grace (else its runs are declared crashed meanwhile).
            await self._sleep(random.uniform(0, delay))
            delay = min(delay * 2, self.max_backoff)

    async def stop(self) -> None:
        """Stop gracefully: abort the running commands, report them, then say goodbye."""
        self.stopping.set()
        runs = list(self.runs.values())
        for run in runs:
            run.aborting = True  # reported as aborted, not failed with the signal's code
            if run.process is not None:
                await run.process.kill(self.config.abort_grace)
        tasks = [r.task for r in runs if r.task is not None]
        if tasks and self.ws is not None:
            # Their results go out before the goodbye: one outcome (aborted), not a race
            # between the result and the goodbye (which would crash the run).
            await asyncio.wait(tasks, timeout=self.config.abort_grace + 5)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send(wire.encode("bye"))
                await self.ws.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _kill_orphans(self) -> None:
        """Kill process groups an earlier incarnation of this agent left running."""
        for info in (i for j in every_journal(self.config.state_dir) for i in j.orphans()):
            pgid, marker = info.get("pgid"), info.get("marker")
            if info.get("settled") or not isinstance(pgid, int) or not isinstance(marker, str):
                continue
            if process_has_marker(pgid, marker):
                log.warning("killing job %s left running by a previous agent", info.get("job"))
                kill_group(pgid, signal.SIGKILL)

    # -- one connection
    async def _session(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"}
        async with connect(
            self.config.ws_url,
            additional_headers=headers,
            max_size=64 * 1024 * 1024,
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
        ) as ws:
            self.ws = ws
            server_id = ws.response.headers.get(wire.SERVER_HEADER) if ws.response else None
            self.journal = self._journal_of(server_id or "")
            await ws.send(self._hello())
            welcome = wire.decode(await asyncio.wait_for(ws.recv(), 10))
            if welcome["type"] != "welcome":
                raise _Refused(str(welcome.get("message", welcome)))
            self.heartbeat_interval = float(welcome.get("heartbeat_interval") or 5.0)
            within = welcome.get("reconnect_within")
            if isinstance(within, int | float) and within > 0:
                self.max_backoff = min(MAX_BACKOFF, max(0.5, within / 4))
            self.connected.set()
            log.info("connected to %s as %s", self.config.server, self.config.name)
            await self._flush_backlog()
            await self._resend_results()
            beat = asyncio.create_task(self._heartbeats(ws))
            try:
                async for frame in ws:
                    await self._on_message(wire.decode(frame))
            finally:
                beat.cancel()
                self.ws = None

    def _journal_of(self, server_id: str) -> Journal:
        journal = self._journals.get(server_id)
        if journal is None:
            # A server without an identity (older) keeps the journal at the state dir's root.
            root = self.config.state_dir
            journal = server_journal(root, server_id) if server_id else Journal(root)
            self._journals[server_id] = journal
        return journal

    def _hello(self) -> str:
        assert self.journal is not None
        return wire.encode(
            "hello",
            version=wire.PROTOCOL_VERSION,
            node=self.config.name,
            incarnation=self.incarnation,
            tags=self.config.tags,
            cluster=self.config.cluster,
            # Every run holding a slot, started or only committed: the server aborts the
            # ones it no longer wants (their abort may have been sent while we were away).
            running=[
                {"job": r.job, "attempt": r.attempt}
                for r in self.runs.values()
                if r.journal is self.journal
            ],
            pending=[{"job": p["job"], "attempt": p["attempt"]} for p in self.journal.pending()],
            busy=self.busy,
        )

    @property
    def busy(self) -> bool:
        return len(self.runs) >= self.config.max_jobs

    async def _heartbeats(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await ws.send(wire.encode("heartbeat", busy=self.busy))
            if loop.time() - self._last_resend > RESEND_AFTER:
                await self._resend_results()

    async def _resend_results(self) -> None:
        self._last_resend = asyncio.get_running_loop().time()
        journal = self.journal
        if journal is None:
            return
        for result in journal.pending():
            await self._deliver(journal, result)

    async def _send(self, message: str) -> bool:
        """Hand a frame to the live connection; False when there is none (or it broke)."""
        ws = self.ws
        if ws is None:
            return False  # results are on disk; output waits in the backlog
        try:
            await ws.send(message)
        except websockets.ConnectionClosed:
            return False
        return True

    async def _flush_backlog(self) -> None:
        """Send, in order, the output produced while the server was unreachable."""
        while self.backlog:
            if not await self._send(self.backlog[0]):
                return
            self.backlog.popleft()

    # -- messages from the server
    async def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "commit":
            await self._on_commit(msg)
        elif kind == "run":
            await self._on_run(*wire.job_ref(msg))
        elif kind == "abort":
            await self._on_abort(*wire.job_ref(msg))
        elif kind == "ack":
            job, attempt = wire.job_ref(msg)
            if self.journal is not None:
                self.journal.acked(job, attempt)
        elif kind == "input":
            self.desk.answer(msg)
        elif kind == "error":
            log.warning("server says: %s", msg.get("message"))

    def allowed(self, spec: dict[str, Any]) -> bool:
        if not self.config.allow:
            return True
        text = shlex.join(spec["argv"]) if spec.get("argv") else str(spec.get("command", ""))
        return any(fnmatch.fnmatchcase(text, pattern) for pattern in self.config.allow)

    async def _on_commit(self, msg: dict[str, Any]) -> None:
        job, attempt = wire.job_ref(msg)
        key = (job, attempt)
        journal = self.journal
        assert journal is not None  # set before hello, so before any commit
        if key in self.runs and self.runs[key].journal is journal:
            await self._send(wire.encode("ack_commit", job=job, attempt=attempt))
            return
        reason = None
        if journal.started(job, attempt) is not None:
            reason = "already ran this job"
        elif key in self.runs:
            reason = "busy"  # the same ids from another server, whose run goes on
        elif not self.allowed(msg):
            reason = "command not on this node's allowlist"
        elif self.busy:
            reason = "busy"
        if reason:
            await self._send(wire.encode("nack_commit", job=job, attempt=attempt, reason=reason))
            return
        self.runs[key] = Run(job, attempt, msg, journal)
        await self._send(wire.encode("ack_commit", job=job, attempt=attempt))

    async def _on_run(self, job: int, attempt: int) -> None:
        run = self.runs.get((job, attempt))
        if run is not None and run.journal is not self.journal:
            return  # another server's job with the same ids
        if run is None or run.task is not None:
            result = self.journal.result(job, attempt) if self.journal is not None else None
            if result is not None:
                await self._send(wire.encode("result", **result))
            return
        run.task = asyncio.create_task(self._execute(run))

    async def _on_abort(self, job: int, attempt: int) -> None:
        run = self.runs.get((job, attempt))
        if run is None or run.journal is not self.journal:
            return
        if run.task is None:
            # Committed but not started (quorum failed, or stopped before run): release.
            self.runs.pop((job, attempt), None)
            return
        run.aborting = True
        if run.process is not None:
            await run.process.kill(self.config.abort_grace)

    # -- running a command
    def _argv(self, spec: dict[str, Any]) -> list[str]:
        if spec.get("argv"):
            return [str(a) for a in spec["argv"]]
        return [self.config.shell, "-c", str(spec.get("command", ""))]

    def _job_file(self, run: Run, work: Path) -> Path | None:
        """Write the job's ``file`` (Chef's raw: or base64: form) for the command to read."""
        content = run.spec.get("file")
        if not isinstance(content, str):
            return None
        if content.startswith("base64:"):
            data = base64.b64decode(content[len("base64:") :])
        else:
            data = content.removeprefix("raw:").encode()
        path = work / "job_file"
        path.write_bytes(data)
        return path

    def _env(self, run: Run, outputs: Path, marker: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (run.spec.get("env") or {}).items()})
        job_id, node = str(run.job), self.config.name
        env.update(
            {
                "JOBYARD_JOB_ID": job_id,
                "JOBYARD_ATTEMPT": str(run.attempt),
                "JOBYARD_NODE_NAME": node,
                "JOBYARD_OUTPUT_DIR": str(outputs),
                "JOBYARD_RUN_MARKER": marker,
                "JOBYARD_INPUT_SOCKET": str(self.desk.path),
                "CHEF_PUSH_JOB_ID": job_id,
                "CHEF_PUSH_NODE_NAME": node,
            }
        )
        return env

    async def _execute(self, run: Run) -> None:
        job, attempt = run.job, run.attempt
        work = self.config.state_dir / "work" / f"{job}-{attempt}"
        outputs = work / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        marker = uuid.uuid4().hex
        status, code = "failed", None
        try:
            cwd = run.spec.get("dir") or None
            if cwd and not Path(cwd).is_dir():
                await self._output(
                    run, "stderr", f"jobyard: working directory {cwd} does not exist\n"
                )
                code = 127
            elif run.aborting:
                code = None
            else:
                # The marker is on disk before the process exists: a restart never re-runs it.
                run.journal.mark_started(job, attempt, {"marker": marker})
                await self._send(wire.encode("ack_run", job=job, attempt=attempt))
                env = self._env(run, outputs, marker)
                job_file = self._job_file(run, work)
                if job_file is not None:
                    env["CHEF_PUSH_JOB_FILE"] = env["JOBYARD_JOB_FILE"] = str(job_file)
                try:
                    run.process = await Process.start(
                        self._argv(run.spec),
                        env,
                        cwd,
                        lambda stream, data: self._output(run, stream, data),
                    )
                except OSError as exc:
                    await self._output(run, "stderr", f"jobyard: cannot start the command: {exc}\n")
                    code = 127
                else:
                    if run.aborting:  # the abort arrived while the process was starting
                        await run.process.kill(self.config.abort_grace)
                    run.journal.mark_started(
                        job, attempt, {"marker": marker, "pgid": run.process.pgid}
                    )
                    code = await run.process.wait()
                    if run.process.killed:
                        await run.process.kill(self.config.abort_grace)
            status = "aborted" if run.aborting else "succeeded" if code == 0 else "failed"
            await self._keep_files(run, outputs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s failed on this node", job)
            await self._output(run, "stderr", f"jobyard agent error: {exc}\n")
        finally:
            self.runs.pop((job, attempt), None)
        result = {"job": job, "attempt": attempt, "status": status, "exit_code": code}
        run.journal.keep_result(job, attempt, result)
        run.journal.forget(job, attempt)
        if run.journal is self.journal:  # else kept for when that server is back
            await self._deliver(run.journal, result)
        shutil.rmtree(work, ignore_errors=True)

    async def _output(self, run: Run, stream: str, data: str) -> None:
        if not run.spec.get("capture_output", True) or run.truncated:
            return
        room = OUTPUT_CAP - run.sent
        if len(data) > room:
            data = data[:room] + "\n[output truncated by the agent]\n"
            run.truncated = True
        run.sent += len(data)
        frame = wire.encode("output", job=run.job, attempt=run.attempt, stream=stream, data=data)
        # Behind older unsent output (order matters), or kept when the connection is down.
        # Bounded: at most OUTPUT_CAP per run, and no new run starts while disconnected.
        if self.backlog or not await self._send(frame):
            self.backlog.append(frame)

    async def _keep_files(self, run: Run, outputs: Path) -> None:
        """Hand the run's output files to the journal: sent before its result, even after
        a reconnect or a restart of this agent."""
        for path in sorted(p for p in outputs.rglob("*") if p.is_file()):
            if path.stat().st_size > FILE_CAP:
                rel = path.relative_to(outputs).as_posix()
                await self._output(
                    run, "stderr", f"jobyard: {rel} is over {FILE_CAP} bytes; not uploaded\n"
                )
                path.unlink()
        run.journal.keep_files(run.job, run.attempt, outputs)

    async def _deliver(self, journal: Journal, result: dict[str, Any]) -> None:
        """Send a finished run's files still in the journal, then (only if they all went)
        its result: the server acknowledges a result once, so files never trail it."""
        key = (result["job"], result["attempt"])
        if key in self._delivering:
            return  # being sent already (a run ending just as the agent reconnects)
        self._delivering.add(key)
        try:
            for name, path in journal.unsent_files(*key):
                data = base64.b64encode(path.read_bytes()).decode()
                frame = wire.encode("file", job=key[0], attempt=key[1], name=name, data=data)
                if not await self._send(frame):
                    return  # the rest (and the result) at the next connection
                path.unlink()
            journal.files_sent(*key)
            await self._send(wire.encode("result", **result))
        finally:
            self._delivering.discard(key)


class _Refused(Exception):
    pass


async def run_agent(config: AgentConfig) -> None:
    """Run an agent until SIGINT/SIGTERM."""
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_requested.set)
    main = asyncio.create_task(agent.run_forever())
    await stop_requested.wait()
    await agent.stop()
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main
