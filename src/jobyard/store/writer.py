"""Group commit: concurrent write use cases share one transaction, each all-or-nothing.

``Database.write(use_case)`` queues ``use_case(tx)`` to the database's one writer task. When
the writer is free it takes what is queued (at most ``BATCH``) and runs it in one
transaction: each use case inside its own SAVEPOINT, so one that fails is rolled back to it
and only its caller gets the exception, while the others go on. After the COMMIT each
caller gets its result, once its ``tx.after_commit`` callbacks have run. A lone use case is
not delayed (no timer) and takes no savepoint: its transaction is its own.

Semantics a caller can rely on:
- answered = committed: a result is given only after the COMMIT of its batch; if the COMMIT
  fails, every use case of the batch gets that error (none of them was committed);
- a caller cancelled while its use case is still queued drops it (it never runs); once it
  runs, it commits or not with its batch whatever happens to the caller;
- use cases of a batch run one after the other in queue order, each seeing what the ones
  before it wrote, as if each had its own transaction in that order;
- a use case the database chose as a deadlock's victim, or failed for serialization
  (PostgreSQL's 40P01, 40001: a submit's shared locks on its nodes against a heartbeat's
  updates), is run again from its savepoint (or its transaction, alone), ``RETRIES`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from jobyard.store.database import Database, Tx

T = TypeVar("T")

# Use cases per transaction, at most: bounds how long the first of them waits for its answer.
BATCH = 64
# Runs of a use case again after the database broke a deadlock with it (or a serialization
# failure): the conflict is with another transaction, not with the use case.
RETRIES = 3
TRANSIENT = frozenset({"40P01", "40001"})


def transient(exc: BaseException) -> bool:
    """A failure that running the same work again may not meet (deadlock, serialization)."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in TRANSIENT


@dataclass
class _Queued(Generic[T]):
    use_case: Callable[[Tx], Awaitable[T]]
    name: str
    answer: asyncio.Future[T]


class GroupWriter:
    """The writer task of one ``Database`` (made on first use, in the running loop)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Queued[Any]] = deque()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions run, and use cases in them (tests, benchmarks)
        self.use_cases = 0

    async def run(self, use_case: Callable[[Tx], Awaitable[T]], name: str) -> T:
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(use_case, name, answer))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="group-commit")
        return await answer

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[_Queued[Any]] = []
                while self._queue and len(batch) < BATCH:
                    item = self._queue.popleft()
                    if not item.answer.cancelled():
                        batch.append(item)
                if batch:
                    # Shielded: a cancellation of the writer (shutdown) lets the batch finish.
                    await asyncio.shield(self._batch(batch))
        except asyncio.CancelledError:
            while self._queue:  # never run: their callers are told
                _answer(self._queue.popleft().answer, exc=_for_caller(asyncio.CancelledError()))
            raise

    async def _batch(self, batch: list[_Queued[Any]]) -> None:
        if len(batch) > 1:
            await self._one_transaction(batch)
            return
        for attempt in range(RETRIES + 1):  # alone: its transaction is run again
            if await self._one_transaction(batch, last=attempt == RETRIES):
                return

    async def _one_transaction(self, batch: list[_Queued[Any]], *, last: bool = True) -> bool:
        """Run the batch; False when a lone use case met a transient conflict and was not
        answered (``last=False``: the caller runs it again)."""
        done: list[tuple[_Queued[Any], Tx, Any]] = []
        failed: list[tuple[_Queued[Any], BaseException]] = []
        try:
            async with self.db.group_transaction() as tx:
                for item in batch:
                    started = time.perf_counter()
                    if len(batch) == 1:
                        done.append((item, tx, await item.use_case(tx)))
                    else:
                        try:
                            forked, result = await _in_savepoint(tx, item)
                        except Exception as exc:
                            failed.append((item, exc))
                            continue
                        done.append((item, forked, result))
                    if self.db.observe is not None:
                        self.db.observe("write", item.name, time.perf_counter() - started)
        except BaseException as exc:  # the batch did not commit: nobody's work was kept
            if not last and len(batch) == 1 and transient(exc):
                return False
            for item, own in failed:
                _answer(item.answer, exc=own)
            for item in batch:
                _answer(item.answer, exc=_for_caller(exc))
            if not isinstance(exc, Exception):
                raise
            return True
        self.batches += 1
        self.use_cases += len(batch)
        for item, error in failed:
            _answer(item.answer, exc=error)
        for item, tx, result in done:
            tx.run_after_commit()
            _answer(item.answer, result=result)
        return True


async def _in_savepoint(tx: Tx, item: _Queued[Any]) -> tuple[Tx, Any]:
    """Run a use case of a batch in its own savepoint, again after a transient conflict."""
    for attempt in range(RETRIES + 1):
        forked = tx.fork()
        try:
            async with tx.conn.begin_nested():
                return forked, await item.use_case(forked)
        except Exception as exc:
            if attempt == RETRIES or not transient(exc):
                raise
    raise AssertionError("unreachable")


def _for_caller(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError):
        return RuntimeError("the server stopped before the change was committed")
    return exc


def _answer(
    answer: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # its caller was cancelled
        if exc is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(result)
