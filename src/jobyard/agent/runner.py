"""The agent's side of the protocol: commit votes, runs, aborts, results, reconnects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import hashlib
import logging
import os
import random
import shlex
import shutil
import signal
import sys
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from jobyard.agent.asking import InputDesk
from jobyard.agent.dialing import dial
from jobyard.agent.journal import Journal, every_journal, server_journal
from jobyard.agent.outgoing import Outgoing
from jobyard.agent.process import Process, kill_group, process_has_marker
from jobyard.domain.secrets import OutputMasker, needles
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.agent")

# Output produced while the server is unreachable waits in memory up to this many
# characters; past it the oldest waiting output is dropped (a marker says how much). While
# connected everything is sent: the server keeps each stream's head and tail.
BACKLOG_CAP = 4_000_000
FILE_CAP = 50_000_000
RESEND_AFTER = 10.0
MAX_BACKOFF = 30.0
# Until a server has said how soon it wants agents back (welcome), retries stay this close:
# an agent started while its server is down (or restarting) finds it within seconds.
FIRST_BACKOFF_CAP = 4.0


def jobyard_executable() -> Path | None:
    """The ``jobyard`` command this agent was started from (or installed beside it)."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "jobyard" and started.exists():
        return started.resolve()
    beside = Path(sys.executable).parent / "jobyard"
    if beside.exists():
        return beside.absolute()
    found = shutil.which("jobyard")
    return Path(found).absolute() if found else None


@dataclass
class AgentConfig:
    server: str
    token: str
    name: str
    tags: list[str] = field(default_factory=list)
    cluster: str | None = None
    allow: list[str] = field(default_factory=list)
    state_dir: Path = Path(".jobyard-agent")
    slots: int = 1  # runs taken at once; one more is nacked busy
    abort_grace: float = 10.0
    shell: str = "/bin/sh"
    # Finished runs' directories kept under <state>/work for debugging (0: none).
    keep_runs: int = 0

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
    spec: wire.Commit
    journal: Journal  # of the server that sent it
    process: Process | None = None
    task: asyncio.Task[None] | None = None
    aborting: bool = False
    # Per stream: masks the run's secret values, even when cut in two by a chunk boundary.
    maskers: dict[wire.Stream, OutputMasker] = field(default_factory=dict)


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
        self.outgoing: Outgoing | None = None  # of the live connection, once welcomed
        self.heartbeat_interval = 5.0
        self.max_backoff = FIRST_BACKOFF_CAP
        self.stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self.desk = InputDesk(self._relay_input, lambda job, attempt: (job, attempt) in self.runs)
        self._last_resend = 0.0
        self.backlog: deque[wire.Output] = deque()  # output not yet handed to a connection
        self.backlog_size = 0  # characters of output in the backlog
        self.backlog_dropped: dict[tuple[int, int, wire.Stream], int] = {}
        self._delivering: set[tuple[int, int]] = set()

    # -- lifecycle
    async def run_forever(self) -> None:
        self._kill_orphans()
        await self.desk.start()
        try:
            await self._connect_forever()
        finally:
            await self.desk.close()

    async def _relay_input(self, request: wire.InputRequest) -> None:
        await self._send(request)

    async def _connect_forever(self) -> None:
        if not self.config.allow:
            log.warning("no --allow patterns: this agent runs any command it is sent")
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self._session()
                delay = 0.5
            except websockets.InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    # Retrying cannot help: the token stays refused until the agent is
                    # started with another one. Network failures, below, keep retrying.
                    raise TokenRefused(self.config.server, exc.response.status_code) from None
                log.warning("connection to %s refused: %s", self.config.server, exc)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.warning("connection to %s lost: %s", self.config.server, exc)
            except _Refused as exc:
                log.error("the server refused this agent: %s", exc)
                delay = max(delay, 5.0)
            except VersionRefused:
                raise  # retrying cannot help: this agent must be upgraded (or downgraded)
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
                await self.ws.send(wire.encode(wire.Bye()))
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
        async with dial(self.config.ws_url, self.config.token) as ws:
            self.ws = ws
            server_id = ws.response.headers.get(wire.SERVER_HEADER) if ws.response else None
            self.journal = self._journal_of(server_id or "")
            await ws.send(wire.encode(self._hello()))
            welcome = wire.decode(await asyncio.wait_for(ws.recv(), 10))
            if isinstance(welcome, wire.Error) and welcome.code == "protocol_version":
                raise VersionRefused(self.config.server, welcome.message)
            if not isinstance(welcome, wire.Welcome):
                raise _Refused(welcome.message if isinstance(welcome, wire.Error) else welcome.kind)
            self.outgoing = Outgoing(ws, batching=welcome.version >= wire.BATCH_VERSION)
            self.heartbeat_interval = welcome.heartbeat_interval or 5.0
            within = welcome.reconnect_within
            if within is not None and within > 0:
                self.max_backoff = min(MAX_BACKOFF, max(0.5, within / 4))
            self.connected.set()
            log.info("connected to %s as %s", self.config.server, self.config.name)
            await self._flush_backlog()
            await self._resend_results()
            beat = asyncio.create_task(self._heartbeats(ws))
            try:
                async for frame in ws:
                    try:
                        messages = wire.unbatch(wire.decode(frame))
                    except wire.ProtocolError as exc:  # a newer server's message, say
                        log.warning("a frame from the server was not understood: %s", exc)
                        continue
                    for message in messages:
                        await self._on_message(message)
            finally:
                beat.cancel()
                self.ws = self.outgoing = None

    def _journal_of(self, server_id: str) -> Journal:
        journal = self._journals.get(server_id)
        if journal is None:
            # A server without an identity (older) keeps the journal at the state dir's root.
            root = self.config.state_dir
            journal = server_journal(root, server_id) if server_id else Journal(root)
            self._journals[server_id] = journal
        return journal

    def _hello(self) -> wire.Hello:
        assert self.journal is not None
        return wire.Hello(
            version=wire.PROTOCOL_VERSION,
            node=self.config.name,
            incarnation=self.incarnation,
            tags=self.config.tags,
            cluster=self.config.cluster,
            # Every run holding a slot, started or only committed: the server aborts the
            # ones it no longer wants (their abort may have been sent while we were away).
            running=[
                wire.RunRef(r.job, r.attempt)
                for r in self.runs.values()
                if r.journal is self.journal
            ],
            pending=[wire.RunRef(p["job"], p["attempt"]) for p in self.journal.pending()],
            busy=self.busy,
            slots=self.config.slots,
        )

    @property
    def busy(self) -> bool:
        return len(self.runs) >= self.config.slots

    def _heartbeat(self) -> wire.Heartbeat:
        return wire.Heartbeat(busy=self.busy, held=len(self.runs))

    def _slots_changed(self) -> None:
        """Tell the server at once when a slot is taken or freed (not at the next beat):
        it paces commits by it, and a node killed out of a run is not shown available
        before its slot is really free. In the frame of what is sent in this turn."""
        self._queue(self._heartbeat())

    async def _heartbeats(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self._send(self._heartbeat())
            if loop.time() - self._last_resend > RESEND_AFTER:
                await self._resend_results()

    async def _resend_results(self) -> None:
        self._last_resend = asyncio.get_running_loop().time()
        journal = self.journal
        if journal is None:
            return
        for result in journal.pending():
            await self._deliver(journal, result)

    async def _send(self, message: wire.AgentMessage) -> bool:
        """Hand a message to the live connection and wait until its frame is written;
        False when there is none (or it broke)."""
        outgoing = self.outgoing
        if outgoing is None:
            return False  # results are on disk; output waits in the backlog
        return await outgoing.send(message)

    def _queue(self, message: wire.AgentMessage) -> None:
        """Hand a message to this turn's frame without waiting for it (a vote, a slot
        count: the server asks again or learns it from the next heartbeat if it is lost)."""
        if self.outgoing is not None:
            self.outgoing.queue(message)

    async def _flush_backlog(self) -> None:
        """Send, in order, the output produced while the server was unreachable (after a
        marker for each stream whose oldest waiting output had to be dropped)."""
        while self.backlog_dropped:
            (job, attempt, stream), size = next(iter(self.backlog_dropped.items()))
            note = (
                f"[jobyard agent: {size:,} characters of output dropped while the server"
                " was unreachable]\n"
            )
            marker = wire.Output(job=job, attempt=attempt, stream=stream, data=note)
            if not await self._send(marker):
                return
            del self.backlog_dropped[(job, attempt, stream)]
        while self.backlog:
            if not await self._send(self.backlog[0]):
                return
            self.backlog_size -= len(self.backlog.popleft().data)

    # -- messages from the server
    async def _on_message(self, msg: wire.AnyMessage) -> None:
        match msg:
            case wire.Commit():
                await self._on_commit(msg)
            case wire.Run():
                await self._on_run(msg.job, msg.attempt)
            case wire.Abort():
                await self._on_abort(msg.job, msg.attempt)
            case wire.Ack():
                if self.journal is not None:
                    self.journal.acked(msg.job, msg.attempt)
            case wire.Input():
                self.desk.answer(msg)
            case wire.Error():
                log.warning("server says: %s", msg.message)
            case _:
                log.warning("the server sent %s, which agents do not take", msg.kind)

    def allowed(self, spec: wire.Commit) -> bool:
        if not self.config.allow:
            return True
        text = shlex.join(spec.argv) if spec.argv else spec.command
        return any(fnmatch.fnmatchcase(text, pattern) for pattern in self.config.allow)

    async def _on_commit(self, msg: wire.Commit) -> None:
        job, attempt = key = msg.ref
        journal = self.journal
        assert journal is not None  # set before hello, so before any commit
        if key in self.runs and self.runs[key].journal is journal:
            self._queue(wire.AckCommit(job=job, attempt=attempt))
            self._slots_changed()  # unchanged, but the server counts acks as taken
            return
        reason = None
        if journal.started(job, attempt) is not None:
            reason = "already ran this job"
        elif key in self.runs:
            reason = "busy"  # the same ids from another server, whose run goes on
        elif not self.allowed(msg):
            reason = "not allowed: command not on this node's allowlist"
        elif self.busy:
            reason = "busy"
        if reason:
            self._queue(wire.NackCommit(job=job, attempt=attempt, reason=reason))
            return
        self.runs[key] = Run(job, attempt, msg, journal)
        # Votes are not waited for: the acks of commits that came in one frame go in one.
        self._queue(wire.AckCommit(job=job, attempt=attempt))
        self._slots_changed()

    async def _on_run(self, job: int, attempt: int) -> None:
        run = self.runs.get((job, attempt))
        if run is not None and run.journal is not self.journal:
            return  # another server's job with the same ids
        if run is None or run.task is not None:
            result = self.journal.result(job, attempt) if self.journal is not None else None
            if result is not None:
                await self._send(result_message(result))
            return
        run.task = asyncio.create_task(self._execute(run))

    async def _on_abort(self, job: int, attempt: int) -> None:
        run = self.runs.get((job, attempt))
        if run is None or run.journal is not self.journal:
            return
        if run.task is None:
            # Committed but not started (quorum failed, or stopped before run): release.
            self.runs.pop((job, attempt), None)
            self._slots_changed()
            return
        run.aborting = True
        if run.process is not None:
            await run.process.kill(self.config.abort_grace)

    # -- running a command
    def _argv(self, spec: wire.Commit) -> list[str]:
        if spec.argv:
            return list(spec.argv)
        return [self.config.shell, "-c", spec.command]

    def _job_file(self, run: Run, work: Path) -> Path | None:
        """Write the job's ``file`` (Chef's raw: or base64: form) for the command to read."""
        content = run.spec.file
        if content is None:
            return None
        if content.startswith("base64:"):
            data = base64.b64decode(content[len("base64:") :])
        else:
            data = content.removeprefix("raw:").encode()
        path = work / "job_file"
        path.write_bytes(data)
        return path

    def _env(self, run: Run, outputs: Path, marker: str, cwd: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(run.spec.env)
        job_id, node = str(run.job), self.config.name
        env.update(
            {
                "JOBYARD_JOB_ID": job_id,
                "JOBYARD_ATTEMPT": str(run.attempt),
                "JOBYARD_NODE_NAME": node,
                "JOBYARD_OUTPUT_DIR": str(outputs),
                "JOBYARD_RUN_DIR": str(cwd),
                "JOBYARD_RUN_MARKER": marker,
                "JOBYARD_INPUT_SOCKET": str(self.desk.path),
                "CHEF_PUSH_JOB_ID": job_id,
                "CHEF_PUSH_NODE_NAME": node,
            }
        )
        command = jobyard_executable()
        if command is not None:
            # `jobyard ask` works from any job: the agent's own command is on the PATH (last,
            # so that it shadows none of the node's tools) and named in JOBYARD_BIN.
            env["JOBYARD_BIN"] = str(command)
            folders = env.get("PATH", os.defpath).split(os.pathsep)
            if str(command.parent) not in folders:
                env["PATH"] = os.pathsep.join([*folders, str(command.parent)])
        return env

    async def _execute(self, run: Run) -> None:
        job, attempt = run.job, run.attempt
        work = self.config.state_dir / "work" / f"{job}-{attempt}"
        shutil.rmtree(work, ignore_errors=True)  # a fresh directory for every node run
        given = run.spec.dir or None
        # Without ``dir`` the command runs in its own fresh directory, which is also where
        # its output files are collected; with ``dir`` they go to JOBYARD_OUTPUT_DIR.
        cwd = Path(given) if given else work / "run"
        outputs = work / "outputs" if given else cwd
        outputs.mkdir(parents=True, exist_ok=True)  # the run directory itself, without dir
        marker = uuid.uuid4().hex
        status, code, reason = "failed", None, None
        inputs: dict[str, str] = {}
        try:
            if given and not cwd.is_dir():
                reason = f"working directory {given} does not exist"
                await self._output(run, "stderr", f"jobyard: {reason}\n")
                code = 127
            elif run.aborting:
                code = None
            else:
                # The marker is on disk before the process exists: a restart never re-runs it.
                run.journal.mark_started(job, attempt, {"marker": marker})
                await self._send(wire.AckRun(job=job, attempt=attempt))
                try:
                    inputs = await self._fetch_inputs(run, cwd)
                except InputError as exc:
                    reason = str(exc)
                    await self._output(run, "stderr", f"jobyard: {reason}\n")
                else:
                    code = await self._start_and_wait(run, work, outputs, marker, cwd)
            status = "aborted" if run.aborting else "succeeded" if code == 0 else "failed"
            if reason is None or status == "aborted":
                too_big = await self._keep_files(run, work, outputs, cwd, inputs)
                if too_big and status != "aborted":
                    status, reason = "failed", too_big
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s failed on this node", job, extra={"job_id": job})
            await self._output(run, "stderr", f"jobyard agent error: {exc}\n")
            status, reason = "failed", f"agent error: {exc}"
        finally:
            self.runs.pop((job, attempt), None)
        self._slots_changed()  # in the frame of the result, below (no await between)
        result: dict[str, Any] = {"job": job, "attempt": attempt, "status": status}
        result["exit_code"] = code
        if reason and status == "failed":
            result["reason"] = reason
        run.journal.keep_result(job, attempt, result)
        run.journal.forget(job, attempt)
        if run.journal is self.journal:  # else kept for when that server is back
            await self._deliver(run.journal, result)
        self._tidy_work(work)

    async def _start_and_wait(
        self, run: Run, work: Path, outputs: Path, marker: str, cwd: Path
    ) -> int | None:
        env = self._env(run, outputs, marker, cwd)
        job_file = self._job_file(run, work)
        if job_file is not None:
            env["CHEF_PUSH_JOB_FILE"] = env["JOBYARD_JOB_FILE"] = str(job_file)
        try:
            run.process = await Process.start(
                self._argv(run.spec),
                env,
                str(cwd),
                lambda stream, data: self._output(run, stream, data),
            )
        except OSError as exc:
            await self._output(run, "stderr", f"jobyard: cannot start the command: {exc}\n")
            return 127
        if run.aborting:  # the abort arrived while the process was starting
            await run.process.kill(self.config.abort_grace)
        run.journal.mark_started(run.job, run.attempt, {"marker": marker, "pgid": run.process.pgid})
        code = await run.process.wait()
        if run.process.killed:
            await run.process.kill(self.config.abort_grace)
        await self._flush_output(run)
        return code

    async def _fetch_inputs(self, run: Run, into: Path) -> dict[str, str]:
        """Download the job's input files into the run directory, checking each sha256;
        answer {name: sha256} (to leave unchanged inputs out of the outputs)."""
        wanted = run.spec.input_files
        if not wanted:
            return {}
        got: dict[str, str] = {}
        headers = {"Authorization": f"Bearer {self.config.token}"}
        base = self.config.server.rstrip("/")
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0)) as http:
            for item in wanted:
                got.update(await fetch_input(http, base, headers, item, into))
        return got

    def _tidy_work(self, work: Path) -> None:
        """Remove the run's directory, or keep the newest ``keep_runs`` finished ones."""
        if self.config.keep_runs <= 0:
            shutil.rmtree(work, ignore_errors=True)
            return
        live = {f"{r.job}-{r.attempt}" for r in self.runs.values()}
        root = work.parent
        done = [p for p in root.iterdir() if p.is_dir() and p.name not in live]
        done.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in done[self.config.keep_runs :]:
            shutil.rmtree(old, ignore_errors=True)

    async def _output(self, run: Run, stream: wire.Stream, data: str) -> None:
        """Send output of a run, its secret values masked (the server masks them too)."""
        masker = run.maskers.get(stream)
        if masker is None:
            env = run.spec.env
            plain = (env[n] for n in run.spec.secret_env if n in env)
            masker = run.maskers[stream] = OutputMasker(needles(plain))
        await self._send_output(run, stream, masker.feed(data))

    async def _flush_output(self, run: Run) -> None:
        for stream, masker in run.maskers.items():
            await self._send_output(run, stream, masker.flush())

    async def _send_output(self, run: Run, stream: wire.Stream, data: str) -> None:
        if not data or not run.spec.capture_output:
            return
        message = wire.Output(job=run.job, attempt=run.attempt, stream=stream, data=data)
        # Behind older unsent output (order matters), or kept when the connection is down.
        if self.backlog or self.backlog_dropped or not await self._send(message):
            self._keep(message)

    def _keep(self, message: wire.Output) -> None:
        """Queue output for later, dropping the oldest queued beyond BACKLOG_CAP."""
        self.backlog.append(message)
        self.backlog_size += len(message.data)
        while self.backlog_size > BACKLOG_CAP and len(self.backlog) > 1:
            old = self.backlog.popleft()
            self.backlog_size -= len(old.data)
            key = (old.job, old.attempt, old.stream)
            self.backlog_dropped[key] = self.backlog_dropped.get(key, 0) + len(old.data)

    async def _keep_files(
        self, run: Run, work: Path, outputs: Path, cwd: Path, inputs: dict[str, str]
    ) -> str | None:
        """Hand the run's output files to the journal: sent before its result, even after
        a reconnect or a restart of this agent. Answers why none were kept when their
        total is over the per-run cap, else None."""
        chosen = collect_outputs(outputs, cwd if cwd != outputs else None, run.spec.outputs, inputs)
        kept: list[tuple[str, Path]] = []
        for rel, path in chosen:
            if path.stat().st_size > FILE_CAP:
                await self._output(
                    run, "stderr", f"jobyard: {rel} is over {FILE_CAP} bytes; not uploaded\n"
                )
                continue
            kept.append((rel, path))
        total = sum(p.stat().st_size for _, p in kept)
        cap = run.spec.files_cap
        if cap is not None and total > cap:
            reason = (
                f"output files total {total} bytes, over the limit of {cap} bytes per run;"
                " none were uploaded"
            )
            await self._output(run, "stderr", f"jobyard: {reason}\n")
            return reason
        staging = work / "keep"
        shutil.rmtree(staging, ignore_errors=True)
        for rel, path in kept:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)
        run.journal.keep_files(run.job, run.attempt, staging)
        return None

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
                frame = wire.File(job=key[0], attempt=key[1], name=name, data=data)
                if not await self._send(frame):
                    return  # the rest (and the result) at the next connection
                path.unlink()
            journal.files_sent(*key)
            await self._send(result_message(result))
        finally:
            self._delivering.discard(key)


def result_message(result: dict[str, Any]) -> wire.Result:
    """The result message of a result kept in the journal."""
    return wire.Result(
        job=result["job"],
        attempt=result["attempt"],
        status=result["status"],
        exit_code=result.get("exit_code"),
        reason=result.get("reason"),
    )


class _Refused(Exception):
    pass


class VersionRefused(Exception):
    """The server does not speak this agent's protocol version: an upgrade is needed."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__(f"the server at {server} refused this agent: {detail}")


class TokenRefused(Exception):
    """The server does not accept this agent's token (unknown, revoked or expired)."""

    def __init__(self, server: str, status: int) -> None:
        super().__init__(
            f"the server at {server} refused this agent's token (HTTP {status}: unknown, "
            "revoked or expired); make an agent token with `jobyard admin create-token --org "
            "ORG --email EMAIL --role agent` and start the agent with --token NEW_TOKEN"
        )
        self.status = status


class InputError(Exception):
    """An input file could not be put in the run directory: the run fails with this."""


async def fetch_input(
    http: httpx.AsyncClient, base: str, headers: dict[str, str], item: wire.InputFile, into: Path
) -> dict[str, str]:
    """Stream one input file to ``into``; check its size and sha256 against the job's."""
    file_id, name = item.id, Path(item.name or str(item.id)).name
    expected = item.sha256
    label = f"input file {name} (id {file_id})"
    dest = into / name
    digest = hashlib.sha256()
    try:
        async with http.stream(
            "GET", f"{base}/api/v1/files/{file_id}/contents", headers=headers
        ) as r:
            if r.status_code == 404:
                raise InputError(f"{label} is missing on the server")
            if r.status_code != 200:
                raise InputError(f"{label} could not be downloaded: HTTP {r.status_code}")
            with open(dest, "wb") as fh:
                async for chunk in r.aiter_bytes():
                    digest.update(chunk)
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        raise InputError(f"{label} could not be downloaded: {exc}") from None
    actual = digest.hexdigest()
    if expected and actual != expected:
        dest.unlink(missing_ok=True)
        raise InputError(f"{label} is corrupt: its sha256 is {actual}, expected {expected}")
    return {name: actual}


def collect_outputs(
    outputs: Path, extra_root: Path | None, globs: Any, inputs: dict[str, str]
) -> list[tuple[str, Path]]:
    """The files a run keeps, as (name, path), input files left unchanged excepted.

    Without a job ``dir`` the run directory is ``outputs``: every file there, or those
    matching ``globs`` when the job gives them. With a ``dir`` (``extra_root``) every file
    in ``outputs`` (JOBYARD_OUTPUT_DIR) and the files in ``dir`` matching ``globs``."""
    patterns = [g for g in globs if isinstance(g, str)] if isinstance(globs, list) else None
    roots: list[tuple[Path, list[str] | None]] = [(outputs, patterns)]
    if extra_root is not None:
        roots = [(outputs, None)] + ([(extra_root, patterns)] if patterns else [])
    found: dict[str, Path] = {}
    for root, only in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(root).as_posix()
            if only is not None and not any(fnmatch.fnmatchcase(rel, g) for g in only):
                continue
            if rel in inputs and _sha256(path) == inputs[rel]:
                continue  # an input file, unchanged: not an output
            found[rel] = path
    return sorted(found.items())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def run_agent(config: AgentConfig) -> None:
    """Run an agent until SIGINT/SIGTERM."""
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_requested.set)
    main = asyncio.create_task(agent.run_forever())
    stopper = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    await agent.stop()
    if main.done():
        main.result()  # TokenRefused, VersionRefused: the agent cannot go on
        return
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main
