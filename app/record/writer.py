"""The record's writer: the process that commits a worker's records, in groups, to the store.

Each worker of the service starts one writer process (app/record/recorder.py) and sends it
every record over a socket; the writer takes whatever has arrived (up to `max_group` records),
writes it in ONE transaction with one flush (WAL fsync on SQLite, COMMIT on PostgreSQL), and
acknowledges that group; records that arrive while a commit is in progress are the next group:
under load, groups grow and the cost of the flush is shared, as PostgreSQL's own group commit
does. A process rather than a thread of the worker: the writer's Python (hashing the chain,
binding the rows) and the event loop's then never wait for one interpreter lock; docs/record.md
has the figures.

Fail closed, recover by itself: when a commit fails (disk full, database down, read-only), the
group is acknowledged as failed with the reason, the connection is dropped, and the next group
(or, while idle, a probe every `retry_seconds`) reconnects and re-reads this writer's chain head
from the store, so that a commit whose outcome was unknown is neither duplicated nor forked. A
connection found broken when a group is written (the database restarted while the writer was
idle) is replaced at once and the group written on the new one, unless the head read back shows
it was committed already: a restart between requests costs no answer.

The writer stops when the service says so (after committing what came before) or when the
service's end of the socket closes (the worker died): what arrived whole is committed, and the
worker it would have answered is gone, so nothing answered is missing.
"""

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

from app.record import metrics, wire
from app.record.chain import ChainHead
from app.record.checkpoint import DEFAULT_MAX_WAL_PAGES, Checkpointer
from app.record.entry import PredictionRecord, RecordError
from app.record.store import SQLITE, SqlStore, StoreError

logger = logging.getLogger("app.record")

DEFAULT_MAX_GROUP: Final = 1_024
MAX_GROUP_ROWS: Final = 100_000  # keeps one transaction of big batches to a few MB
DEFAULT_RETRY_SECONDS: Final = 1.0
RECV_BYTES: Final = 1 << 20


class GroupWriter:
    """One writer's store, chain head and health. `commit(records)` writes them as one
    transaction and returns None, or the failure reason (the records are not committed)."""

    def __init__(
        self,
        store_factory: Callable[[], SqlStore],
        writer_id: str,
        *,
        max_wal_pages: int = DEFAULT_MAX_WAL_PAGES,
    ) -> None:
        self.writer_id = writer_id
        self._factory = store_factory
        self._max_wal_pages = max_wal_pages
        self._checkpointer: Checkpointer | None = None  # SQLite's, started with its store
        self._store: SqlStore | None = None
        self._head: ChainHead | None = None
        self._started_ns = time.time_ns()
        self.health: tuple[bool, str | None] = (False, "starting")

    def commit(self, records: list[PredictionRecord]) -> str | None:
        """Write `records` (none: only reconnect, a probe of the store); their failure reason."""
        started = time.perf_counter()
        try:
            self._write(records)
        except Exception as exc:  # a bug must not leave the service waiting: fail closed
            reason = exc.reason if isinstance(exc, StoreError) else "store_error"
            self._fail(reason, str(exc))
            return reason
        if records:
            metrics.RECORDS.inc(len(records))
            metrics.ROWS.inc(sum(record.n_rows for record in records))
            metrics.GROUP_SIZE.observe(len(records))
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
            self._after_commit()
        if self.health != (False, "starting") and not self.health[0]:
            logger.info("record available again: writer %s", self.writer_id)
        self.health = (True, None)
        return None

    def close(self) -> None:
        self._drop()
        if self._checkpointer is not None:
            self._checkpointer.stop()

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
        store.turn_timeout = None  # the Recorder's timeout bounds the wait: see SqlStore
        try:
            store.migrate()
            if store.dialect is SQLITE:
                store.tune_for_commits()
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

    def _fail(self, reason: str, detail: str) -> None:
        self._drop()
        if self.health != (False, reason):
            logger.error("record unavailable (%s): %s", reason, detail)
        self.health = (False, reason)


def serve(
    sock: socket.socket,
    writer: GroupWriter,
    *,
    max_group: int = DEFAULT_MAX_GROUP,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
) -> None:
    """Commit what the service sends on `sock` and acknowledge it, until it says stop or goes."""
    sock.setblocking(True)
    writer.commit([])  # connect (and migrate) before the first record: the start says how
    sock.sendall(wire.ack(wire.HEALTH, 0, writer.health[1]))
    inbox = bytearray()
    while True:
        if not wire.wait_ready(sock, None if writer.health[0] else retry_seconds):
            before = writer.health
            writer.commit([])  # idle and unhealthy: probe, so that health recovers
            if writer.health != before:
                sock.sendall(wire.ack(wire.HEALTH, 0, writer.health[1]))
            continue
        if not _receive(sock, inbox):
            return  # the service is gone: everything that arrived whole was answered here
        records, stopping = _take(inbox)
        for group in _groups(records, max_group):
            sock.sendall(_commit_group(writer, group))
        if stopping:
            return


def _receive(sock: socket.socket, inbox: bytearray) -> bool:
    """Read what has arrived (at least one read); False at the end of the stream."""
    data = sock.recv(RECV_BYTES)
    if not data:
        return False
    inbox += data
    with contextlib.suppress(BlockingIOError):
        while len(inbox) < 64 * RECV_BYTES:
            more = sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
            if not more:
                break
            inbox += more
    return True


def _take(inbox: bytearray) -> tuple[list[PredictionRecord | str], bool]:
    """The records whole in `inbox` (a string where one could not be decoded: why), and
    whether a stop came after them."""
    records: list[PredictionRecord | str] = []
    for kind, payload in wire.read_frames(inbox):
        if kind == wire.STOP:
            return records, True
        try:
            records.append(wire.decode_record(payload))
        except RecordError as exc:
            records.append(str(exc))
    return records, False


def _groups(
    records: list[PredictionRecord | str], max_group: int
) -> list[list[PredictionRecord] | str]:
    """`records` cut into commits of at most `max_group` records and MAX_GROUP_ROWS rows, in
    order; a record that could not be decoded is a group of its own, failed."""
    groups: list[list[PredictionRecord] | str] = []
    current: list[PredictionRecord] = []
    rows = 0
    for record in records:
        if isinstance(record, str) or len(current) >= max_group or rows >= MAX_GROUP_ROWS:
            if current:
                groups.append(current)
            current, rows = [], 0
        if isinstance(record, str):
            groups.append(record)
            continue
        current.append(record)
        rows += record.n_rows
    if current:
        groups.append(current)
    return groups


def _commit_group(writer: GroupWriter, group: list[PredictionRecord] | str) -> bytes:
    if isinstance(group, str):  # the service sent a record the store must not hold: a bug
        logger.error("record refused by the writer: %s", group)
        # The store is as healthy as it was: say so, or the worker's readiness would stay 503
        # until a commit that a not-ready worker is sent no request to make.
        return wire.ack(wire.FAILED, 1, "store_error") + wire.ack(wire.HEALTH, 0, writer.health[1])
    reason = writer.commit(group)
    if reason is None:
        return wire.ack(wire.COMMITTED, len(group))
    return wire.ack(wire.FAILED, len(group), reason)
