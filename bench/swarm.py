"""Simulated agents: many per process, each a real WebSocket speaking the real protocol.

Each agent dials the server's agent endpoint exactly as ``jobyard agent`` does (the same
``jobyard.agent.dialing.dial``: token, frame limit, pings, no compression), says ``hello``
(a node name, a fresh incarnation, ``--slots`` slots: one unless told), heartbeats at the
interval the server's ``welcome`` gives, and answers like a ``jobyard agent`` whose
command is a no-op that succeeds at once, with the agent's own sender
(``jobyard.agent.outgoing.Outgoing``: what is queued in one turn of the event loop leaves
in one batch frame), message for message and frame for frame as ``jobyard agent`` sends
them:

    commit -> ack_commit + heartbeat (a slot taken)           one frame
    run    -> ack_run                                         one frame, then
              heartbeat (the slot freed) + result succeeded   one frame
    abort  -> result aborted    ack -> (the server applied our result)

Unlike the real agent, a simulated agent takes any number of jobs at once (it never
answers ``nack_commit`` busy), so that many jobs can share the same nodes. With
``--hold-votes`` it answers no ``commit`` at all: its nodes are online and every job sent to
them stays in ``voting`` (what the submit benchmark needs: jobs dispatched, nothing more).

The process is driven over stdin/stdout with JSON lines (``bench.fanout`` does it):

    stdin:  {"cmd": "connect", "first": 0, "count": 500}  -> {"event": "connected", ...}
            {"cmd": "stats"}                               -> {"event": "stats", ...}
            {"cmd": "quit"}                                -> closes every connection, exits
    stdout: {"event": "done", "job": J, "n": K, "t": T} once the K agents of this process
            that received ``commit`` for job J have all received ``ack`` for their result;
            T is ``time.monotonic()`` of the last ack (the same clock in every process).

    python -m bench.swarm --url ws://127.0.0.1:PORT/api/v1/agent/ws --token T [--prefix sim]
        [--slots N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from collections import defaultdict
from typing import Any

from websockets.exceptions import ConnectionClosed

from jobyard.agent.dialing import ClientConnection, dial
from jobyard.agent.outgoing import Outgoing
from jobyard.wire import agent as wire

CONNECT_PARALLEL = 64


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Swarm:
    def __init__(
        self, url: str, token: str, prefix: str, hold_votes: bool = False, slots: int = 1
    ) -> None:
        self.url, self.token, self.prefix = url, token, prefix
        self.hold_votes = hold_votes
        self.slots = slots
        self.sockets: dict[str, ClientConnection] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.commits: dict[int, int] = defaultdict(int)
        self.acks: dict[int, int] = defaultdict(int)
        self.received = 0
        self.sent = 0  # frames of jobs (heartbeats are counted apart, in beats)
        self.beats = 0
        self.errors: list[str] = []
        self.closed = 0

    async def connect_many(self, first: int, count: int) -> None:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_PARALLEL)
        ready: list[asyncio.Future[bool]] = []

        async def one(i: int) -> None:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            ready.append(fut)
            async with gate:
                self.tasks.append(asyncio.create_task(self.agent(f"{self.prefix}-{i:05d}", fut)))
                await fut

        await asyncio.gather(*(one(i) for i in range(first, first + count)))
        ok = sum(1 for f in ready if f.result())
        emit(
            event="connected",
            ok=ok,
            failed=count - ok,
            total=len(self.sockets),
            seconds=time.monotonic() - started,
            errors=self.errors[-3:],
        )

    async def agent(self, name: str, ready: asyncio.Future[bool]) -> None:
        try:
            async with dial(self.url, self.token, open_timeout=60) as ws:
                hello = wire.Hello(
                    version=wire.PROTOCOL_VERSION,
                    node=name,
                    incarnation=uuid.uuid4().hex,
                    tags=["sim"],
                    slots=self.slots,
                )
                await ws.send(wire.encode(hello))
                welcome = wire.decode(await asyncio.wait_for(ws.recv(), 60))
                if not isinstance(welcome, wire.Welcome):
                    raise RuntimeError(f"refused: {welcome}")
                self.sockets[name] = ws
                ready.set_result(True)
                interval = welcome.heartbeat_interval or 5.0
                out = Outgoing(ws, batching=welcome.version >= wire.BATCH_VERSION)
                agent = Agent(self, out)
                beat = asyncio.create_task(self.heartbeats(agent, interval))
                try:
                    async for frame in ws:
                        self.received += 1
                        for message in wire.unbatch(wire.decode(frame)):
                            agent.on_message(message)
                finally:
                    beat.cancel()
                    for task in list(agent.tasks):
                        task.cancel()
        except (OSError, ConnectionClosed, RuntimeError, TimeoutError) as exc:
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            if not ready.done():
                ready.set_result(False)
        finally:
            self.sockets.pop(name, None)
            self.closed += 1

    async def heartbeats(self, agent: Agent, interval: float) -> None:
        # Spread the beats over the interval, as independently started agents would be.
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            await agent.out.send(agent.heartbeat())
            self.beats += 1
            await asyncio.sleep(interval)

    def acked(self, job: int) -> None:
        self.acks[job] += 1
        if self.acks[job] == self.commits[job]:
            emit(event="done", job=job, n=self.acks[job], t=time.monotonic())
            del self.acks[job], self.commits[job]

    async def close_all(self) -> None:
        async def bye(ws: ClientConnection) -> None:
            with contextlib.suppress(Exception):
                await ws.send(wire.encode(wire.Bye()))
                await ws.close()

        await asyncio.gather(*(bye(ws) for ws in list(self.sockets.values())))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {
            "connected": len(self.sockets),
            "received": self.received,
            "sent": self.sent,
            "beats": self.beats,
            "open_jobs": len(self.commits),
            "errors": len(self.errors),
            "last_errors": self.errors[-3:],
        }


class Agent:
    """One simulated agent's answers, as ``jobyard agent``'s runner gives them (its
    ``_on_commit``, ``_execute`` and ``_slots_changed``) for a command that exits 0 at once.
    Unlike it, any number of runs is taken at once (no ``busy``)."""

    __slots__ = ("held", "out", "swarm", "tasks")

    def __init__(self, swarm: Swarm, out: Outgoing) -> None:
        self.swarm, self.out = swarm, out
        self.held = 0  # runs committed and not finished: the slots the heartbeat reports
        self.tasks: set[asyncio.Task[None]] = set()

    def heartbeat(self) -> wire.Heartbeat:
        return wire.Heartbeat(busy=self.held >= self.swarm.slots, held=self.held)

    def queue(self, message: wire.AgentMessage) -> None:
        self.out.queue(message)
        self.swarm.sent += 1

    def on_message(self, msg: wire.AnyMessage) -> None:
        match msg:
            case wire.Commit(job=job, attempt=attempt):
                self.swarm.commits[job] += 1
                if self.swarm.hold_votes:
                    return
                self.held += 1
                self.queue(wire.AckCommit(job=job, attempt=attempt))
                self.queue(self.heartbeat())  # a slot taken, in the frame of the vote
            case wire.Run(job=job, attempt=attempt):
                task = asyncio.create_task(self.execute(job, attempt))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            case wire.Abort(job=job, attempt=attempt):
                self.held = max(0, self.held - 1)
                self.queue(wire.Result(job=job, attempt=attempt, status="aborted"))
            case wire.Ack(job=job):
                self.swarm.acked(job)
            case wire.Error(message=message):
                self.swarm.errors.append(message)

    async def execute(self, job: int, attempt: int) -> None:
        self.swarm.sent += 1
        await self.out.send(wire.AckRun(job=job, attempt=attempt))  # before the command
        self.held = max(0, self.held - 1)
        self.queue(self.heartbeat())  # the slot freed, in the frame of the result
        self.queue(wire.Result(job=job, attempt=attempt, status="succeeded", exit_code=0))


async def serve(args: argparse.Namespace) -> None:
    swarm = Swarm(args.url, args.token, args.prefix, args.hold_votes, args.slots)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit(event="started")
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "connect":
            await swarm.connect_many(cmd["first"], cmd["count"])
        elif cmd["cmd"] == "stats":
            emit(event="stats", **swarm.stats())
        elif cmd["cmd"] == "quit":
            break
    await swarm.close_all()
    emit(event="bye", **swarm.stats())


def main() -> None:
    parser = argparse.ArgumentParser(description="Simulated jobyard agents.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--prefix", default="sim")
    parser.add_argument("--hold-votes", action="store_true", help="answer no commit")
    parser.add_argument(
        "--slots", type=int, default=1, help="the slots each agent says it has (hello)"
    )
    args = parser.parse_args()
    if not args.url.startswith(("ws://127.", "ws://localhost", "ws://[::1]")):
        raise SystemExit("simulated agents dial loopback only")
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
