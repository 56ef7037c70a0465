"""The record's store: SQLite (the embedded default) or PostgreSQL, behind one class.

psycopg 3 directly, not SQLAlchemy Core: the store issues a dozen fixed statements, all plain
SQL that SQLite and PostgreSQL read alike (`INSERT ... ON CONFLICT`, `BIGINT`, `DOUBLE
PRECISION`), so a `Dialect` of five strings (the parameter marker, the blob type, how a write
transaction begins, the migration lock, how a streaming cursor is made) is the whole difference.
SQLAlchemy would add a large dependency and a second layer between us and the two things that
matter here, the transaction boundary and the fsync; Alembic would add a migration tool for a
list of DDL steps. So: one code path in `SqlStore`, stdlib `sqlite3` or psycopg underneath.

Durability: SQLite runs in WAL mode with `synchronous=FULL`, so a COMMIT returns after the WAL
is fsynced; PostgreSQL commits with its defaults (`fsync=on`, `synchronous_commit=on`), and the
store refuses a server or session that turned either off.

Schema: a `schema_version` table and `MIGRATIONS`, a list of DDL steps per version, applied
forward only, each version in one transaction (under an advisory lock on PostgreSQL, under
SQLite's write lock), so several workers starting together migrate once.

Errors surface as `StoreError(reason)`, reason one of STORE_REASONS, message redacted.
"""

import contextlib
import errno
import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from app.record.chain import FIELD_NAMES, ChainHead, Link, record_fields
from app.record.config import RecordConfig, redact
from app.record.entry import PredictionRecord

RECORD_COLUMNS: Final = ("writer_id", "seq", "hash", *FIELD_NAMES)
STORE_REASONS: Final = ("disk_full", "read_only", "unreachable", "store_error")
_MIGRATION_LOCK: Final = 0x7265636F7264  # "record": the advisory lock key of migrations
_PRUNE_LOCK: Final = 0x7072756E65  # "prune": one prune at a time, service or CLI
BUSY_TIMEOUT_SECONDS: Final = 10.0  # SQLite's wait for its write lock
TURN_TIMEOUT_SECONDS: Final = BUSY_TIMEOUT_SECONDS  # the wait for the writers' flock

# Each version's steps. {blob}, {i64}, {f64} are the dialect's types. Never edit a released
# version's steps: add a version.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (  # 1: the records and each writer's head
        "CREATE TABLE records ("
        " writer_id TEXT NOT NULL, seq {i64} NOT NULL, hash {blob} NOT NULL,"
        " request_id TEXT NOT NULL, received_ns {i64} NOT NULL, answered_ns {i64} NOT NULL,"
        " route TEXT NOT NULL, protocol TEXT NOT NULL, encoding TEXT NOT NULL,"
        " caller TEXT, case_ref TEXT, model_version TEXT NOT NULL,"
        " service_version TEXT NOT NULL, scorer TEXT NOT NULL, threshold {f64} NOT NULL,"
        " confidence {f64}, scores {blob} NOT NULL, probabilities {blob} NOT NULL,"
        " classes {blob} NOT NULL, sets {blob} NOT NULL, explanation {blob},"
        " status INTEGER NOT NULL, latency_s {f64} NOT NULL, n_rows INTEGER NOT NULL,"
        " PRIMARY KEY (writer_id, seq))",
        "CREATE TABLE writers (writer_id TEXT PRIMARY KEY, started_ns {i64} NOT NULL,"
        " last_seq {i64} NOT NULL, last_hash {blob} NOT NULL)",
    ),
    (  # 2: where prune cut each chain; the indexes of export, replay and case look-ups
        "CREATE TABLE chain_cuts (writer_id TEXT PRIMARY KEY, first_seq {i64} NOT NULL,"
        " prev_hash {blob} NOT NULL, cut_ns {i64} NOT NULL)",
        "CREATE INDEX records_answered ON records (answered_ns)",
        "CREATE INDEX records_model ON records (model_version)",
        "CREATE INDEX records_case_ref ON records (case_ref)",
    ),
    (  # 3: confirmed outcomes fed back (POST /feedback), and every correction of one
        "CREATE INDEX records_request_id ON records (request_id)",
        "CREATE TABLE outcomes (request_id TEXT NOT NULL, row_index INTEGER NOT NULL,"
        " outcome TEXT NOT NULL, source TEXT, caller TEXT, recorded_ns {i64} NOT NULL,"
        " PRIMARY KEY (request_id, row_index))",
        "CREATE TABLE outcome_corrections (request_id TEXT NOT NULL, row_index INTEGER NOT NULL,"
        " previous TEXT NOT NULL, outcome TEXT NOT NULL, source TEXT, caller TEXT,"
        " recorded_ns {i64} NOT NULL)",
    ),
    (  # 4: monitoring reads the served model's latest records
        "CREATE INDEX records_model_answered ON records (model_version, answered_ns)",
        "DROP INDEX records_model",  # the new index's first column serves what it served
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class StoreError(Exception):
    """The store could not do what was asked; `reason` is one of STORE_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    param: str  # the parameter marker
    blob: str
    begin_write: str
    lock: str | None  # taken first in a migration's transaction
    begin_snapshot: str  # a read transaction whose reads all see one state of the store

    def sql(self, text: str) -> str:
        return text.replace("?", self.param) if self.param != "?" else text

    def ddl(self, text: str) -> str:
        return text.format(blob=self.blob, i64="BIGINT", f64="DOUBLE PRECISION")


# In WAL mode a SQLite read transaction reads one snapshot from its first read to its end.
SQLITE: Final = Dialect("sqlite", "?", "BLOB", "BEGIN IMMEDIATE", None, "BEGIN")
POSTGRES: Final = Dialect(
    "postgresql",
    "%s",
    "BYTEA",
    "BEGIN",
    f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})",
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
)


@dataclass(frozen=True, slots=True)
class StoredLink:
    """A stored record as its columns, unvalidated: verify hashes these values as they are;
    `record()` validates them (RecordError for a value no answer could have had)."""

    writer_id: str
    seq: int
    hash: bytes
    values: tuple[Any, ...]  # in FIELD_NAMES order

    def record(self) -> PredictionRecord:
        return PredictionRecord(**dict(zip(FIELD_NAMES, self.values, strict=True)))


@dataclass(frozen=True, slots=True)
class WriterHead:
    writer_id: str
    started_ns: int
    last_seq: int
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class ChainCut:
    writer_id: str
    first_seq: int  # the first record kept
    prev_hash: bytes  # the hash of the record before it, which prune deleted
    cut_ns: int


class SqlStore:
    """One connection to the store. Not thread-safe: one per thread (the Recorder's writer
    thread has its own)."""

    def __init__(
        self,
        dialect: Dialect,
        connect: Callable[[], Any],
        url: str | None,
        turns: Path | None = None,
    ) -> None:
        self.dialect = dialect
        self._connect = connect
        self._url = url  # only to redact messages
        self._conn: Any = None
        self._turns = turns  # SQLite's: the file whose lock its writers take in turn
        self._turns_fd: int | None = None
        # How long a write waits for its turn (None: as long as it takes). A record writer
        # blocks, woken the moment the holder lets go, since the Recorder's own timeout bounds
        # what its requests wait; feedback, prunes and the CLI give up as SQLite's busy wait does.
        self.turn_timeout: float | None = TURN_TIMEOUT_SECONDS
        self._snapshot: Any = None  # the cursor of the snapshot in progress, if any

    # -- connection and transactions ------------------------------------------------------
    def connect(self) -> None:
        if self._conn is None:
            with self.errors():
                self._conn = self._connect()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
                conn.close()
        fd, self._turns_fd = self._turns_fd, None
        if fd is not None:
            os.close(fd)  # releases its lock, if held

    def __enter__(self) -> "SqlStore":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Any database or OS error as a StoreError with a reason and a redacted message."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            reason = classify(exc)
            if reason is None:
                raise
            raise StoreError(reason, redact(f"{type(exc).__name__}: {exc}", self._url)) from None

    @contextmanager
    def transaction(self, begin: str = "BEGIN") -> Iterator[Any]:
        if self._snapshot is not None:  # a read inside `snapshot`: part of its transaction
            yield self._snapshot
            return
        self.connect()
        with self.errors():
            cur = self._conn.cursor()
            cur.execute(begin)
            try:
                yield cur
            except BaseException:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads made inside see one state of the store: verify reads the heads, the cuts and
        the records, and a commit or a prune between those reads would look like tampering."""
        if self._snapshot is not None:
            raise RuntimeError("a snapshot is already in progress")
        with self.transaction(self.dialect.begin_snapshot) as cur:
            self._snapshot = cur
            try:
                yield
            finally:
                self._snapshot = None

    @contextmanager
    def write(self) -> Iterator[Any]:
        """A write transaction. On SQLite, writers (the workers' writer processes, a prune,
        feedback) first take turns at an flock of their own: SQLite's busy handler polls its
        write lock with sleeps that grow to 100 ms, and two writers committing all the time
        starved each other (2 workers, 8 connections: p99 0.5 s); a blocked flock is woken as
        soon as the holder lets go."""
        with self._turn(), self.transaction(self.dialect.begin_write) as cur:
            yield cur

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self._turns is None:
            yield
            return
        self.connect()  # which makes the store's folder
        with self.errors():
            if self._turns_fd is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._turns_fd = os.open(self._turns, flags, 0o600)
            if self.turn_timeout is None:
                fcntl.flock(self._turns_fd, fcntl.LOCK_EX)
            else:
                _flock_within(self._turns_fd, self.turn_timeout)
        try:
            yield
        finally:
            fcntl.flock(self._turns_fd, fcntl.LOCK_UN)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement in its own transaction; its rows (tests and the CLI use this)."""
        with self.write() as cur:
            cur.execute(self.dialect.sql(sql), tuple(params))
            return list(cur.fetchall()) if cur.description else []

    # -- schema ---------------------------------------------------------------------------
    def version(self) -> int:
        with self.transaction() as cur:
            return _version(cur, self.dialect)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the forward steps up to `target`; the version the store is at after."""
        with self.write() as cur:
            if self.dialect.lock:
                cur.execute(self.dialect.lock)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = _version(cur, self.dialect)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    "store_error",
                    f"the store is at schema {current}, newer than this code's {SCHEMA_VERSION}",
                )
            for version in range(current + 1, target + 1):
                for step in MIGRATIONS[version - 1]:
                    cur.execute(self.dialect.ddl(step))
            if target > current:
                cur.execute("DELETE FROM schema_version")
                cur.execute(self.dialect.sql("INSERT INTO schema_version VALUES (?)"), (target,))
            return max(current, target)

    def schema_version(self) -> int:
        """The schema version the store is at (0: none yet), read without writing."""
        with self.transaction() as cur:
            return _version(cur, self.dialect)

    # -- writing --------------------------------------------------------------------------
    def head(self, writer_id: str) -> ChainHead:
        """The writer's last committed link (a new writer starts at seq 0)."""
        with self.transaction() as cur:
            cur.execute(
                self.dialect.sql("SELECT last_seq, last_hash FROM writers WHERE writer_id = ?"),
                (writer_id,),
            )
            row = cur.fetchone()
        if row is None:
            return ChainHead(writer_id)
        return ChainHead(writer_id, int(row[0]), bytes(row[1]))

    def append(self, head: ChainHead, links: Sequence[Link], started_ns: int) -> None:
        """Insert `links` (the chain after `head`) and move the writer's head to the last, in
        one transaction; with no links, write the head as it is (a probe that the store takes
        writes)."""
        last = (links[-1].seq, links[-1].hash) if links else (head.seq, head.hash)
        with self.write() as cur:
            if links:
                self._insert(cur, links)
            cur.execute(
                self.dialect.sql(
                    "INSERT INTO writers (writer_id, started_ns, last_seq, last_hash)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (writer_id) DO UPDATE"
                    " SET last_seq = excluded.last_seq, last_hash = excluded.last_hash"
                ),
                (head.writer_id, started_ns, *last),
            )

    def _insert(self, cur: Any, links: Sequence[Link]) -> None:
        if self.dialect is not SQLITE:  # psycopg pipelines executemany in one round trip
            cur.executemany(_INSERT[self.dialect.name], [_row(link) for link in links])
            return
        # SQLite: one multi-row statement per chunk rather than one step per record; each
        # step releases and retakes the interpreter lock, which the event loop is waiting for.
        for start in range(0, len(links), _SQLITE_CHUNK):
            chunk = links[start : start + _SQLITE_CHUNK]
            cur.execute(_sqlite_insert(len(chunk)), [v for link in chunk for v in _row(link)])

    # -- SQLite's checkpoints (app/record/checkpoint.py) -----------------------------------
    def tune_for_commits(self) -> None:
        """SQLite, for the writer's connection: its commits never checkpoint the WAL (a
        Checkpointer does), and keep their statement journals in memory (temp_store; a
        writer's statements are small), where SQLite otherwise created and removed a file in
        /var/tmp, outside the record's folder, every few commits under load. Readers keep the
        default, so that a sort of the whole record may use a file rather than memory."""
        if self.dialect is SQLITE:
            self.connect()
            with self.errors():
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
                self._conn.execute("PRAGMA temp_store=MEMORY")

    def checkpoint(self) -> int:
        """SQLite: copy what the WAL holds into the database without blocking writers (a
        PASSIVE checkpoint); the pages the WAL holds, copied or not. 0 on PostgreSQL."""
        if self.dialect is not SQLITE:
            return 0
        self.connect()
        with self.errors():
            _, pages, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(int(pages), 0)

    # -- reading (streamed: constant memory whatever the size of the record) ---------------
    def writers(self) -> list[WriterHead]:
        rows = self._fetch("SELECT writer_id, started_ns, last_seq, last_hash FROM writers", ())
        return [
            WriterHead(
                r[0],
                _stored_int(r[1], f"writer {r[0]}'s start"),
                _stored_int(r[2], f"writer {r[0]}'s last seq"),
                _stored_bytes(r[3], f"writer {r[0]}'s last hash"),
            )
            for r in rows
        ]

    def cuts(self) -> dict[str, ChainCut]:
        rows = self._fetch("SELECT writer_id, first_seq, prev_hash, cut_ns FROM chain_cuts", ())
        return {
            r[0]: ChainCut(
                r[0],
                _stored_int(r[1], f"writer {r[0]}'s cut"),
                _stored_bytes(r[2], f"writer {r[0]}'s cut hash"),
                _stored_int(r[3], f"writer {r[0]}'s cut time"),
            )
            for r in rows
        }

    def links(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        model_versions: Sequence[str] | None = None,
        by_time: bool = False,
    ) -> Iterator[StoredLink]:
        """Stored records, by writer and seq (or by answered time with `by_time`), answered in
        [since_ns, until_ns) and made by one of `model_versions` when given."""
        where: list[str] = []
        params: list[Any] = []
        if since_ns is not None:
            where.append("answered_ns >= ?")
            params.append(since_ns)
        if until_ns is not None:
            where.append("answered_ns < ?")
            params.append(until_ns)
        if model_versions is not None:
            where.append(f"model_version IN ({', '.join('?' for _ in model_versions)})")
            params.extend(model_versions)
        order = "answered_ns, writer_id, seq" if by_time else "writer_id, seq"
        sql = (
            f"SELECT {', '.join(RECORD_COLUMNS)} FROM records"  # noqa: S608 - fixed names only
            f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {order}"
        )
        for row in self._stream(sql, params):
            seq = _stored_int(row[1], f"a seq of writer {row[0]}")
            digest = _stored_bytes(row[2], f"writer {row[0]} seq {seq}'s hash")
            yield StoredLink(row[0], seq, digest, tuple(_value(v) for v in row[3:]))

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.transaction() as cur:
            cur.execute(self.dialect.sql(sql), tuple(params))
            return list(cur.fetchall())

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        with self.transaction() as cur:
            if self.dialect is POSTGRES:  # a server-side cursor, fetched 2,000 rows at a time
                cur = self._conn.cursor(name="record_stream")
                cur.itersize = 2_000
            cur.execute(self.dialect.sql(sql), tuple(params))
            with self.errors():
                yield from cur
            if self.dialect is POSTGRES:
                cur.close()

    # -- pruning --------------------------------------------------------------------------
    def prune(self, before_ns: int, now_ns: int, max_records: int | None = None) -> dict[str, int]:
        """Delete, writer by writer, the longest first part of each chain answered before
        `before_ns` (never a record answered later), at most `max_records` of each writer
        when given (so that one transaction, which holds SQLite's write lock, stays short),
        and note in chain_cuts where each chain now starts and the hash it continues from.
        The records deleted per writer. Prunes run one at a time (a lock on PostgreSQL,
        the write lock on SQLite), whichever process runs them."""
        if max_records is not None and max_records < 1:
            raise ValueError("max_records must be at least 1")
        deleted: dict[str, int] = {}
        with self.write() as cur:
            if self.dialect is POSTGRES:
                cur.execute(f"SELECT pg_advisory_xact_lock({_PRUNE_LOCK})")
            for writer_id, keep_from in self._keep_from(cur, before_ns, max_records):
                cur.execute(
                    self.dialect.sql("SELECT hash FROM records WHERE writer_id = ? AND seq = ?"),
                    (writer_id, keep_from - 1),
                )
                row = cur.fetchone()
                if row is None:  # nothing old, or the chain is already broken there
                    continue
                cur.execute(
                    self.dialect.sql("DELETE FROM records WHERE writer_id = ? AND seq < ?"),
                    (writer_id, keep_from),
                )
                deleted[writer_id] = int(cur.rowcount)
                cur.execute(
                    self.dialect.sql(
                        "INSERT INTO chain_cuts (writer_id, first_seq, prev_hash, cut_ns)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (writer_id) DO UPDATE"
                        " SET first_seq = excluded.first_seq, prev_hash = excluded.prev_hash,"
                        " cut_ns = excluded.cut_ns"
                    ),
                    (writer_id, keep_from, bytes(row[0]), now_ns),
                )
        return deleted

    def _keep_from(
        self, cur: Any, before_ns: int, max_records: int | None
    ) -> list[tuple[str, int]]:
        """Per writer, the first seq to keep: its first record answered at or after
        `before_ns` (past its head when there is none), no further than `max_records` past
        its first stored record."""
        cur.execute(
            self.dialect.sql(
                "SELECT w.writer_id, w.last_seq, (SELECT MIN(r.seq) FROM records r"
                " WHERE r.writer_id = w.writer_id AND r.answered_ns >= ?),"
                " (SELECT MIN(r.seq) FROM records r WHERE r.writer_id = w.writer_id)"
                " FROM writers w"
            ),
            (before_ns,),
        )
        found = []
        for writer_id, last, first_new, first in cur.fetchall():
            keep_from = int(last) + 1 if first_new is None else int(first_new)
            if max_records is not None and first is not None:
                keep_from = min(keep_from, int(first) + max_records)
            found.append((writer_id, keep_from))
        return found


_PLACEHOLDERS: Final = ", ".join("?" for _ in (*RECORD_COLUMNS, "n_rows"))
_INSERT_SQL: Final = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}, n_rows) VALUES ({_PLACEHOLDERS})"  # noqa: S608
)
_INSERT: Final = {d.name: d.sql(_INSERT_SQL) for d in (SQLITE, POSTGRES)}
# Rows per SQLite statement: 64 x 24 parameters, far below SQLite's 32,766, and at most 64
# distinct statements for the connection's statement cache (128).
_SQLITE_CHUNK: Final = 64


@functools.cache
def _sqlite_insert(rows: int) -> str:
    return _INSERT_SQL + f", ({_PLACEHOLDERS})" * (rows - 1)


def _row(link: Link) -> tuple[Any, ...]:
    r = link.record
    return (link.writer_id, link.seq, link.hash, *record_fields(r), r.n_rows)


def _value(v: Any) -> Any:
    return bytes(v) if isinstance(v, memoryview) else v


def _version(cur: Any, dialect: Dialect) -> int:
    cur.execute(
        dialect.sql(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?"
            if dialect is POSTGRES
            else "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
        ),
        ("schema_version",),
    )
    if cur.fetchone()[0] == 0:
        return 0
    cur.execute("SELECT MAX(version) FROM schema_version")
    found = cur.fetchone()[0]
    return 0 if found is None else int(found)


def _stored_int(value: Any, what: str) -> int:
    """A stored whole number, or StoreError: SQLite holds whatever it was given, so a column
    of the chain (a seq, a head) edited to text is tampering, said as such, not a crash."""
    if type(value) is int:
        return value
    raise StoreError("store_error", f"{what} is not a whole number: the record was altered")


def _stored_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise StoreError("store_error", f"{what} is not bytes: the record was altered")


# -- opening --------------------------------------------------------------------------------
def _flock_within(fd: int, seconds: float) -> None:
    """flock(LOCK_EX) on `fd`, tried again with short sleeps (Linux has no timed flock) until
    `seconds` have passed; then StoreError: a writer that never lets go (hung, or another
    program's) must not hang a feedback request or a prune."""
    deadline = time.monotonic() + seconds
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(
                    "store_error", f"another writer held the record's write lock for {seconds:g} s"
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.02)


def open_store(config: RecordConfig, *, read_only: bool = False) -> SqlStore:
    """The store the config names, not yet connected (connect() or `with` opens it).
    `read_only`: every transaction only reads, and opening it changes nothing either (the
    audit's verify, replay and export, which may be run on a copy kept as evidence): SQLite's
    file is opened read-only as it is, in whatever journal mode, instead of being created and
    put in WAL mode; PostgreSQL's session is read-only."""
    if config.database_url is not None:
        url = config.database_url
        return SqlStore(POSTGRES, lambda: _connect_postgres(url, read_only), url)
    path = config.sqlite_path
    if read_only:
        return SqlStore(SQLITE, lambda: _open_sqlite_read_only(path), None)
    turns = path.with_name(path.name + "-writers")
    return SqlStore(SQLITE, lambda: _connect_sqlite(path), None, turns)


def _open_sqlite_read_only(path: Path) -> sqlite3.Connection:
    # SQLite may still add the -wal and -shm files of a WAL database beside it (to read it),
    # never change the database file.
    uri = path.resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=True
    )


def _connect_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created owner-only before SQLite opens it: SQLite gives its -wal and -shm files the
    # database file's permissions. Only when it does not exist: closing any descriptor of a
    # database file drops every POSIX lock this process holds on it, those of its other SQLite
    # connections included (SQLite's own documentation warns of this), which let another
    # process reset the WAL index under them ("disk I/O error").
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=True
    )
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError("store_error", f"{path}: SQLite would not use WAL (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_postgres(url: str, read_only: bool = False) -> Any:
    try:
        import psycopg  # the postgres extra: imported only when DATABASE_URL names a server
    except ImportError:
        raise StoreError(
            "unreachable",
            "DATABASE_URL names PostgreSQL, and psycopg is not installed: "
            "install the service with its `postgres` extra",
        ) from None

    # A server that stops answering (a dead host, a partition) would hold the writer forever:
    # TCP keepalives and a bound on unacknowledged sends turn that into an error in seconds.
    conn = psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=5,
        application_name="malignancy-predictor-record",
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        tcp_user_timeout=10_000,
    )
    try:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit")
        }
        if settings["fsync"] != "on" or settings["synchronous_commit"] == "off":
            raise StoreError("store_error", "PostgreSQL runs with fsync or synchronous_commit off")
        if read_only:
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    except BaseException:
        conn.close()
        raise
    return conn


def classify(exc: BaseException) -> str | None:
    """The STORE_REASONS reason for a database or OS error, None for anything else (a bug)."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "disk_full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "read_only"
        return "store_error"
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:
            return "disk_full"
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return "read_only"
        return "store_error"
    return _classify_postgres(exc)


def _classify_postgres(exc: BaseException) -> str | None:
    try:
        import psycopg
        from psycopg import errors
    except ImportError:
        return None
    if isinstance(exc, errors.DiskFull):
        return "disk_full"
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return "read_only"
    if isinstance(exc, psycopg.OperationalError):
        return "unreachable"
    if isinstance(exc, psycopg.Error):
        return "store_error"
    return None
