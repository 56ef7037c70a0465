"""The group-commit writer: `Recorder.commit` returns once its record is durably stored.

Each process has one Recorder and one writer thread. A request's task puts its record on a
bounded queue with an asyncio future and awaits the future; the thread takes whatever is queued
(up to `max_group` records), writes it in ONE transaction with one flush (WAL fsync on SQLite,
COMMIT on PostgreSQL), then resolves the futures of that group through
`loop.call_soon_threadsafe`. Requests that arrive while a commit is in progress are the next
group: under load, groups grow and the cost of the flush is shared, as PostgreSQL's own group
commit does. The event loop never touches the disk.

What a record costs the process is mostly not the flush (the thread waits for it without the
interpreter lock) but the hand-offs of that lock between the writer and the event loop, and the
writer's pass over a group: both are per group, not per record. So the writer does little
Python per group (a C queue, one multi-row INSERT on SQLite, the chain hashed field by field)
and, when requests are arriving together, waits `commit_delay` (1 ms) for more before writing:
docs/record.md has the figures.

Backpressure: when the queue is full, `commit` raises RecordUnavailable("queue_full") at once
rather than waiting. The queue holds `max_queue` records, many commits' worth; a full queue
means the store is far behind, and a fast 503 with Retry-After tells clients and load balancers
to back off, where waiting would pile requests (and their memory) up without bound.

Fail closed, recover by itself: when a commit fails (disk full, database down, read-only), every
waiter of that group gets RecordUnavailable(reason), `health()` reports the reason, the
connection is dropped, and the next group (or, while idle, a probe every `retry_seconds`)
reconnects and re-reads this writer's chain head from the store, so that a commit whose outcome
was unknown is neither duplicated nor forked. The first commit that succeeds makes it healthy.
A connection found broken when a group is written (the database restarted while the writer was
idle) is replaced at once and the group written on the new one, unless the head read back shows
it was committed already: a restart between requests costs no answer.
"""

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from app.record import metrics
from app.record.chain import ChainHead, new_writer_id
from app.record.checkpoint import DEFAULT_MAX_WAL_PAGES, Checkpointer
from app.record.config import RecordConfig
from app.record.entry import PredictionRecord
from app.record.store import SQLITE, SqlStore, StoreError, open_store

logger = logging.getLogger("app.record")

DEFAULT_MAX_QUEUE: Final = 10_000
DEFAULT_MAX_GROUP: Final = 1_024
MAX_GROUP_ROWS: Final = 100_000  # keeps one transaction of big batches to a few MB
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_RETRY_SECONDS: Final = 1.0
# How long the writer waits for more records before writing a group when the last group held
# several (requests are arriving together), as PostgreSQL's commit_delay and commit_siblings:
# a flush and a writer's pass cost far more than a record, so a slightly later, larger group
# costs less CPU per request. A lone request (the last group held one) never waits.
DEFAULT_COMMIT_DELAY: Final = 0.001

# A queued record: the record, the loop and future of its waiter, when it was queued.
_Waiter = tuple[PredictionRecord, asyncio.AbstractEventLoop, "asyncio.Future[None]", float]
_STOP: Final = object()


class RecordUnavailable(Exception):  # noqa: N818 - the name the issue and the lead use
    """The record could not be committed, so the prediction must not be answered (503).
    `reason` is one of app.record.metrics.FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"record unavailable: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RecorderStats:
    commits: int  # transactions that committed records
    records: int
    rows: int
    failed_commits: int


class Recorder:
    """`Recorder.from_config(RecordConfig.from_env())` in each worker process (its thread does
    not survive a fork), then `start()`, `await commit(record)` per answered request, `close()`
    at shutdown. The store factory is called in the writer thread, again after each failure."""

    def __init__(
        self,
        store_factory: Callable[[], SqlStore],
        *,
        writer_id: str | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_group: int = DEFAULT_MAX_GROUP,
        timeout: float = DEFAULT_TIMEOUT,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        commit_delay: float = DEFAULT_COMMIT_DELAY,
        max_wal_pages: int = DEFAULT_MAX_WAL_PAGES,
    ) -> None:
        if max_queue < 1 or max_group < 1 or timeout <= 0 or retry_seconds <= 0:
            raise ValueError("max_queue, max_group, timeout and retry_seconds must be positive")
        if not 0 <= commit_delay < timeout:
            raise ValueError("commit_delay must be at least 0 and below the timeout")
        self.writer_id = writer_id or new_writer_id()
        self._factory = store_factory
        # SimpleQueue is C: a put and a non-blocking get take no Python-level locks, where
        # queue.Queue's Condition costs the event loop and the writer a few microseconds
        # each. The bound is checked by `commit` (qsize is exact; a race can pass it by the
        # number of threads putting at once, never more).
        self._queue: queue.SimpleQueue[_Waiter | object] = queue.SimpleQueue()
        self._max_queue = max_queue
        self._max_group = max_group
        self._timeout = timeout
        self._retry = retry_seconds
        self._commit_delay = commit_delay
        self._max_wal_pages = max_wal_pages
        self._checkpointer: Checkpointer | None = None  # SQLite's, started with its store
        self._last_group = 0
        self._thread: threading.Thread | None = None
        self._store: SqlStore | None = None
        self._head: ChainHead | None = None
        self._started_ns = time.time_ns()
        self._health: tuple[bool, str | None] = (False, "closed")
        self._accepting = False
        self._first_attempt = threading.Event()
        self._commits = self._records = self._rows = self._failed = 0

    @classmethod
    def from_config(cls, config: RecordConfig, **options: Any) -> "Recorder":
        """The recorder of the store `config` names (options as for the constructor)."""
        return cls(functools.partial(open_store, config), **options)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, wait: float = 10.0) -> tuple[bool, str | None]:
        """Start the writer thread and wait up to `wait` seconds for its first connection
        (which migrates the schema); the health after it. A store that cannot be reached does
        not stop the start: commits fail closed until it can."""
        if self._thread is not None:
            raise RuntimeError("the recorder is already started")
        self._accepting = True
        self._health = (False, "starting")
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()
        self._first_attempt.wait(wait)
        return self.health()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, commit those queued, stop the thread, close the store."""
        self._accepting = False
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        self._health = (False, "closed")
        metrics.AVAILABLE.set(0)

    def health(self) -> tuple[bool, str | None]:
        """(True, None) when the last attempt to write committed, else (False, reason)."""
        return self._health

    def stats(self) -> RecorderStats:
        return RecorderStats(self._commits, self._records, self._rows, self._failed)

    # -- the request side (event loop) ------------------------------------------------------
    async def commit(self, record: PredictionRecord) -> None:
        """Return once `record` is durably committed; RecordUnavailable(reason) if it is not
        (it may still be committed later after a timeout: a record may exist for an answer that
        was not given, never the reverse)."""
        if not self._accepting:
            metrics.count_failure("closed")
            raise RecordUnavailable("closed")
        loop = asyncio.get_running_loop()
        if self._queue.qsize() >= self._max_queue:
            metrics.count_failure("queue_full")
            raise RecordUnavailable("queue_full")
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((record, loop, future, time.perf_counter()))
        # A timer that fails the future, rather than asyncio.wait_for: wait_for wraps the
        # future in another task-like waiter, a third of the record's cost on the event loop.
        timer = loop.call_later(self._timeout, _expire, future)
        try:
            await future
        except _ExpiredError:
            # the writer is stuck (a store that stopped answering): not ready until it commits
            self._health = (False, "timeout")
            metrics.AVAILABLE.set(0)
            metrics.count_failure("timeout")
            raise RecordUnavailable("timeout") from None
        finally:
            timer.cancel()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        self._attempt([])
        self._first_attempt.set()
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=None if self._health[0] else self._retry)
            except queue.Empty:
                self._attempt([])  # idle and unhealthy: probe, so that health recovers
                continue
            if self._last_group > 1 and self._commit_delay and first is not _STOP:
                time.sleep(self._commit_delay)
            group, stopping = self._drain(first)
            self._last_group = len(group)
            if group:
                self._attempt(group)
        self._drop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        late = []  # queued after the stop by a commit that raced close(): refused, not lost
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if item is not _STOP:
                    late.append(item)
        _resolve(late, RecordUnavailable("closed"))  # type: ignore[arg-type]

    def _drain(self, first: object) -> tuple[list[_Waiter], bool]:
        group: list[_Waiter] = []
        item, stopping, rows = first, False, 0
        while True:
            if item is _STOP:
                stopping = True  # commit what is queued before it, then stop
            else:
                group.append(item)  # type: ignore[arg-type]
                rows += group[-1][0].n_rows
            if len(group) >= self._max_group or rows >= MAX_GROUP_ROWS:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return group, stopping

    def _attempt(self, group: list[_Waiter]) -> None:
        started = time.perf_counter()
        try:
            self._write([waiter[0] for waiter in group])
        except Exception as exc:  # a bug must not leave waiters hanging: fail closed
            reason = exc.reason if isinstance(exc, StoreError) else "store_error"
            self._fail(group, reason, str(exc))
            return
        elapsed = time.perf_counter() - started
        if group:
            rows = sum(waiter[0].n_rows for waiter in group)
            self._commits += 1
            self._records += len(group)
            self._rows += rows
            metrics.RECORDS.inc(len(group))
            metrics.ROWS.inc(rows)
            metrics.GROUP_SIZE.observe(len(group))
            metrics.COMMIT_SECONDS.observe(elapsed)
            self._after_commit()
            # the group's first record waited longest: one observation a commit, since each
            # is a write to a shared file, and one per record cost a fifth of a group's pass
            metrics.WAIT_SECONDS.observe(time.perf_counter() - group[0][3])
        if not self._health[0]:
            logger.info("record available again: %s", self._describe())
            metrics.AVAILABLE.set(1)  # on a change only: each set is a write to a shared file
        self._health = (True, None)
        _resolve(group, None)

    def _write(self, records: list[PredictionRecord]) -> None:
        """Commit `records` as the next links of this writer's chain. A connection that broke
        while idle (the database restarted, a failover) is found only by using it: then
        reconnect once and read the head back, which says whether the commit was applied
        before the break; write the group again only if it was not."""
        store, head = self._store, self._head
        if store is None or head is None:
            store, head = self._open()
            self._append(store, head, records)
            return
        before = head.seq
        try:
            self._append(store, head, records)
        except StoreError as exc:
            if exc.reason != "unreachable":
                raise
            self._drop()
            store, head = self._open()
            if head.seq == before + len(records):  # it was committed: only the answer was lost
                return
            if head.seq != before:
                raise StoreError("store_error", f"writer {self.writer_id}: head moved") from None
            self._append(store, head, records)

    def _after_commit(self) -> None:
        checkpointer, store = self._checkpointer, self._store
        if checkpointer is None or store is None:
            return
        if not checkpointer.over_cap:
            checkpointer.nudge()
            return
        checkpointer.over_cap = False
        with contextlib.suppress(StoreError):  # the next commit says whether the store works
            store.checkpoint()  # between two commits: the WAL is copied to its end

    def _open(self) -> tuple[SqlStore, ChainHead]:
        store = self._factory()
        try:
            store.migrate()
            if store.dialect is SQLITE:
                store.defer_checkpoints()
                self._start_checkpointer()
            head = store.head(self.writer_id)
        except BaseException:
            store.close()
            raise
        self._store, self._head = store, head
        return store, head

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._factory, self._max_wal_pages)
            self._checkpointer.start()

    def _append(self, store: SqlStore, head: ChainHead, records: list[PredictionRecord]) -> None:
        links = head.extend(records)
        store.append(head, links, self._started_ns)
        if links:
            head.advance(links[-1])

    def _drop(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store, self._head = None, None

    def _fail(self, group: list[_Waiter], reason: str, detail: str) -> None:
        self._drop()
        self._failed += 1
        if self._health != (False, reason):
            logger.error("record unavailable (%s): %s", reason, detail)
        self._health = (False, reason)
        metrics.AVAILABLE.set(0)
        if group:
            metrics.count_failure(reason, len(group))
        _resolve(group, RecordUnavailable(reason))

    def _describe(self) -> str:
        return f"writer {self.writer_id}"


class _ExpiredError(Exception):
    """A commit's future outlived the recorder's timeout."""


def _expire(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_exception(_ExpiredError())


def _resolve(group: list[_Waiter], error: RecordUnavailable | None) -> None:
    """Wake each waiter's loop once for the whole group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, future, _ in group:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, error)


def _settle(futures: list["asyncio.Future[None]"], error: RecordUnavailable | None) -> None:
    for future in futures:
        if future.done():  # its waiter timed out or was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(RecordUnavailable(error.reason))
