"""Running one command in its own process group, streaming its output, killing it whole."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from jobyard.wire.agent import Stream

CHUNK = 64 * 1024


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_has_marker(pid: int, marker: str) -> bool:
    """True when process ``pid`` carries our run marker in its environment (Linux)."""
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"JOBYARD_RUN_MARKER={marker}".encode() in data.split(b"\0")


class Process:
    """A running command. ``wait()`` returns its exit code once its output is drained."""

    def __init__(self, proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]]) -> None:
        self.proc = proc
        self.pgid = proc.pid
        self.readers = readers
        self.killed = False

    @classmethod
    async def start(
        cls,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        on_output: Callable[[Stream, str], Awaitable[None]],
    ) -> Process:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, so abort kills the whole tree
        )

        async def pump(stream: asyncio.StreamReader | None, name: Stream) -> None:
            if stream is None:
                return
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while True:
                chunk = await stream.read(CHUNK)
                text = decoder.decode(chunk, final=not chunk)
                if text:
                    await on_output(name, text)
                if not chunk:
                    break

        readers = [
            asyncio.create_task(pump(proc.stdout, "stdout")),
            asyncio.create_task(pump(proc.stderr, "stderr")),
        ]
        return cls(proc, readers)

    async def wait(self) -> int:
        code = await self.proc.wait()
        # The command may leave children holding the pipes open; stop reading once the
        # leader is gone and its group is empty, or after a short grace.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.readers), 2.0)
        for r in self.readers:
            r.cancel()
        return code

    async def kill(self, grace: float) -> bool:
        """TERM the whole group, KILL it after ``grace``; True once no process is left."""
        self.killed = True
        kill_group(self.pgid, signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + grace
        while group_alive(self.pgid) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if group_alive(self.pgid):
            kill_group(self.pgid, signal.SIGKILL)
        for _ in range(100):
            if not group_alive(self.pgid):
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(self.proc.wait(), 5)
        return not group_alive(self.pgid)
