"""Real jobyard processes for end-to-end tests.

- ``free_port()``: a loopback port nobody listens on.
- ``Server``: ``python -m jobyard serve`` as a subprocess; waits for ``/readyz``;
  ``stop()`` (SIGTERM), ``kill()`` (SIGKILL), ``restart()``; context manager.
- ``run_cli(*args)``: ``python -m jobyard ...``, captured.
- ``bootstrap_admin(server)``: an organization, an admin and their token via ``jobyard admin``.
- ``wait_until(predicate)``: poll with a deadline (never a bare sleep).

Each process writes its output to a log file in its data directory (a pipe nobody reads
would block it); ``Process.log()`` returns it for assertion messages.

- ``Agent``: ``python -m jobyard agent`` for one node; ready once it says it connected.
- ``Listening``: a ``Process`` serving HTTP on a loopback port, at ``url``.
- ``TcpProxy``: a loopback TCP relay whose connections can be cut (a network failure).

More process kinds extend ``Process``: give them a ``command()`` and, if they have one,
a ``ready()`` check.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

T = TypeVar("T")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 60.0


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)
        last = predicate()
    return last


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours without JOBYARD_* settings (tests pass flags)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def jobyard_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobyard", *args]


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
    check: bool = False,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobyard ARGS``; output is captured as text."""
    proc = subprocess.run(
        jobyard_command(*args),
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"jobyard {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


class Process:
    """A long-running child process with its output in ``log_path``."""

    name = "process"

    def __init__(self, data_dir: str | Path, *, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / f"{self.name}.log"
        self._log_file: IO[bytes] | None = None

    # To be provided by subclasses.
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    # Lifecycle.
    def start(self, *, timeout: float = START_TIMEOUT) -> Any:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self.proc = subprocess.Popen(
            self.command(),
            env=clean_env(self.env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.log()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait; returns the exit code. Fails (after a SIGKILL) on a hang."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"{self.name} did not exit within {timeout}s of SIGTERM:\n{self.log()}"
            ) from None
        self._reap()
        return code

    def kill(self) -> int:
        """SIGKILL the process and wait for it; returns the exit code (negative)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if self.running:
            self.proc.kill()
        code = self.proc.wait(STOP_TIMEOUT)
        self._reap()
        return code

    def restart(self, *, timeout: float = START_TIMEOUT) -> Any:
        if self.running:
            self.stop()
        self.proc = None
        return self.start(timeout=timeout)

    def _reap(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop if still running, whatever it takes (used on test teardown)."""
        if self.running:
            with contextlib.suppress(TimeoutError):
                self.stop()
        self._reap()

    def log(self, tail: int = 8000) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-tail:].decode("utf-8", "replace")

    def __enter__(self) -> Any:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Listening(Process):
    """A process that serves HTTP on a loopback port (a free one unless given) at ``url``."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(data_dir, env=env)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Server(Listening):
    """``python -m jobyard serve --data-dir D --port P [--database-url URL]``."""

    name = "server"

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        database_url: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        # Tests create jobs before their agents have registered: node names are pre-declared
        # unless a test says otherwise (JOBYARD_ALLOW_UNKNOWN_NODES=0).
        super().__init__(
            data_dir, port=port, env={"JOBYARD_ALLOW_UNKNOWN_NODES": "1", **(env or {})}
        )
        self.database_url = database_url
        self.args = list(args)

    @property
    def db_args(self) -> list[str]:
        """The flags that point a CLI command at this server's database."""
        out = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            out += ["--database-url", self.database_url]
        return out

    def command(self) -> list[str]:
        return jobyard_command(
            "serve", *self.db_args, "--host", "127.0.0.1", "--port", str(self.port), *self.args
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **kwargs)

    def admin(self, *args: str, check: bool = True) -> Any:
        """``jobyard admin ARGS --json`` against this server's database; the parsed JSON."""
        proc = run_cli("admin", *args, *self.db_args, "--json", env=self.env, check=check)
        return json.loads(proc.stdout) if proc.returncode == 0 else proc


def bootstrap_admin(
    server: Server, org: str = "acme", email: str = "admin@acme.test"
) -> tuple[str, str, str]:
    """Create an organization, an admin user and a token with the CLI: (org, email, token)."""
    created = server.admin("create-org", org)
    assert created["name"] == org, created
    user = server.admin("create-user", "--org", org, "--email", email, "--role", "admin")
    assert user["email"] == email and user["role"] == "admin", user
    token = server.admin("create-token", "--org", org, "--email", email)
    assert token["token"], token
    return org, email, str(token["token"])


class Agent(Process):
    """``python -m jobyard agent --server URL --token T --name N ... --state-dir D``.

    Its journal lives in ``data_dir/state`` and survives ``restart()`` (a new incarnation
    of the same node). Ready once its log says it connected after the latest start, i.e.
    the server has registered the node.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        server_url: str,
        token: str,
        node: str,
        tags: Sequence[str] = (),
        cluster: str | None = None,
        allow: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = f"agent-{node}"
        super().__init__(data_dir, env=env)
        self.server_url = server_url
        self.token = token
        self.node = node
        self.tags = list(tags)
        self.cluster = cluster
        self.allow = list(allow)
        self.args = list(args)
        self._log_offset = 0

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    def command(self) -> list[str]:
        out = ["agent", "--server", self.server_url, "--token", self.token, "--name", self.node]
        for tag in self.tags:
            out += ["--tag", tag]
        if self.cluster:
            out += ["--cluster", self.cluster]
        for pattern in self.allow:
            out += ["--allow", pattern]
        return jobyard_command(*out, "--state-dir", str(self.state_dir), *self.args)

    def launch(self) -> Agent:
        """Start the process without waiting (start several, then ``wait_ready`` each)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self.proc = subprocess.Popen(
            self.command(),
            env=clean_env(self.env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def start(self, *, timeout: float = START_TIMEOUT) -> Agent:
        self.launch()
        self.wait_ready(timeout)
        return self

    def connections(self) -> int:
        """How many times this agent connected since its latest start."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().count(b" connected to ")
        except FileNotFoundError:
            return 0

    def ready(self) -> bool:
        return self.connections() > 0


def start_agents(agents: Sequence[Agent], timeout: float = START_TIMEOUT) -> None:
    """Start agents side by side and wait until every one of them is connected."""
    for agent in agents:
        agent.launch()
    for agent in agents:
        agent.wait_ready(timeout)


class TcpProxy:
    """Relays loopback TCP connections to ``target_port``; ``cut()`` breaks the live ones.

    A cut closes both ends of every relayed connection, as a failed network path does
    for the peers; new connections are relayed again at once.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.held = False
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.held:  # the path is down: the peer sees its connection reset
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Break every live connection; returns how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        return len(pairs)

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Cut every connection and refuse new ones until the block ends."""
        self.held = True
        self.cut()
        try:
            yield
        finally:
            self.held = False

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()
