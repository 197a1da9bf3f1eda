"""Group commit: concurrent write use cases share one transaction, each all-or-nothing.

``Database.write(use_case)`` queues ``use_case(tx)`` to the database's one writer task. When
the writer is free it takes what is queued (at most ``BATCH``) and runs it in one
transaction, the use cases one after the other with no SAVEPOINT between them (two
statements each that nearly always mean nothing). If one of them fails, that transaction
is rolled back and the batch runs again, each use case inside its own SAVEPOINT, so the one
that fails is rolled back to it and only its caller gets the exception, while the others
go on. After the COMMIT each caller gets its result, once its ``tx.after_commit`` callbacks
have run. A lone use case is not delayed (no timer) and takes no savepoint: its
transaction is its own. On PostgreSQL a batch run without savepoints asks the database one
``SELECT 1`` before its COMMIT: a use case that caught a database error of its own would
otherwise leave an aborted transaction whose COMMIT silently rolls back.

Semantics a caller can rely on:
- answered = committed: a result is given only after the COMMIT of its batch; if the COMMIT
  fails, every use case of the batch gets that error (none of them was committed);
- a caller cancelled while its use case is still queued drops it (it never runs); once it
  runs, it commits or not with its batch whatever happens to the caller;
- use cases of a batch run one after the other in queue order, each seeing what the ones
  before it wrote, as if each had its own transaction in that order; a use case may run
  more than once (its batch run again after another's failure, or after a deadlock), only
  the last run's writes and callbacks are kept;
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
            if not await self._together(batch):
                await self._one_transaction(batch)  # each in its savepoint this time
            return
        for attempt in range(RETRIES + 1):  # alone: its transaction is run again
            if await self._one_transaction(batch, last=attempt == RETRIES):
                return

    async def _together(self, batch: list[_Queued[Any]]) -> bool:
        """Run a batch with no savepoints; False, with nothing kept and nobody answered, when
        one of its use cases failed (the batch is then run again with savepoints)."""
        done: list[tuple[_Queued[Any], Tx, Any]] = []
        ran = False
        try:
            async with self.db.group_transaction() as tx:
                for item in batch:
                    started = time.perf_counter()
                    forked = tx.fork()
                    done.append((item, forked, await item.use_case(forked)))
                    if self.db.observe is not None:
                        self.db.observe("write", item.name, time.perf_counter() - started)
                if not self.db.is_sqlite:
                    await tx.conn.exec_driver_sql("SELECT 1")  # fails if aborted
                ran = True
        except BaseException as exc:
            if isinstance(exc, Exception) and not ran:
                return False
            _fail(batch, exc)  # the COMMIT failed (or the writer stopped): nothing was kept
            if not isinstance(exc, Exception):
                raise
            return True
        self._committed(batch, done, [])
        return True

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
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return True
        self._committed(batch, done, failed)
        return True

    def _committed(
        self,
        batch: list[_Queued[Any]],
        done: list[tuple[_Queued[Any], Tx, Any]],
        failed: list[tuple[_Queued[Any], BaseException]],
    ) -> None:
        """The batch committed: each caller gets its error, or its result once its
        after-commit callbacks have run."""
        self.batches += 1
        self.use_cases += len(batch)
        for item, error in failed:
            _answer(item.answer, exc=error)
        for item, tx, result in done:
            tx.run_after_commit()
            _answer(item.answer, result=result)


def _fail(batch: list[_Queued[Any]], exc: BaseException) -> None:
    """Nothing of the batch was committed: every caller not answered yet gets ``exc``."""
    for item in batch:
        _answer(item.answer, exc=_for_caller(exc))


async def _in_savepoint(tx: Tx, item: _Queued[Any]) -> tuple[Tx, Any]:
    """Run a use case of a batch in its own savepoint, again after a transient conflict.

    The savepoint is the writer's own statements, not SQLAlchemy's ``begin_nested``: when a
    use case caught a database error itself, PostgreSQL has aborted the transaction and
    refuses the RELEASE, and ``begin_nested`` then leaves it aborted (the batch's COMMIT
    would roll everyone back without a word). Here the savepoint is rolled back to instead,
    and that use case alone fails."""
    conn = tx.conn
    for attempt in range(RETRIES + 1):
        forked = tx.fork()
        await conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
        try:
            result = await item.use_case(forked)
            await conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            return forked, result
        except Exception as exc:
            await conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            await conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            if attempt == RETRIES or not transient(exc):
                raise
    raise AssertionError("unreachable")


_SAVEPOINT = "jobyard_use_case"


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
