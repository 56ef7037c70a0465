"""The store on SQLite and PostgreSQL: schema migrations, round trips, the file's mode."""

import fcntl
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from app.record.chain import GENESIS, ChainHead
from app.record.config import RecordConfig
from app.record.store import MIGRATIONS, SCHEMA_VERSION, SqlStore, StoreError, open_store
from tests.postgres import PostgresServer
from tests.record_records import Answers

TABLES = {"schema_version", "records", "writers", "chain_cuts", "outcomes", "outcome_corrections"}


def tables(store: SqlStore) -> set[str]:
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if store.dialect.name == "sqlite"
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {row[0] for row in store.execute(sql)}


def test_migrates_an_empty_store_to_the_latest_version(config: RecordConfig) -> None:
    with open_store(config) as store:
        assert store.version() == 0
        assert store.migrate() == SCHEMA_VERSION == len(MIGRATIONS)
        assert tables(store) == TABLES
        assert store.migrate() == SCHEMA_VERSION  # again: nothing to do, nothing broken
        assert store.execute("SELECT COUNT(*) FROM schema_version") == [(1,)]


def test_migrates_forward_from_version_1_keeping_the_records(
    config: RecordConfig, answers: Answers
) -> None:
    records = [answers.single(), answers.batch(5)]
    with open_store(config) as store:
        assert store.migrate(target=1) == 1
        assert "chain_cuts" not in tables(store)
        head = ChainHead("w1")
        links = head.extend(records)
        store.append(head, links, 1)
    with open_store(config) as store:  # a newer service starts on the version 1 store
        assert store.version() == 1
        assert store.migrate() == SCHEMA_VERSION
        assert tables(store) == TABLES
        stored = list(store.links())
    assert [link.record() for link in stored] == records
    assert [(s.seq, s.hash) for s in stored] == [(link.seq, link.hash) for link in links]


def test_appends_and_reads_back_every_field(store: SqlStore, answers: Answers) -> None:
    records = [answers.single(), answers.batch(300), answers.explained()]
    head = store.head("writer-a")
    assert (head.seq, head.hash) == (0, GENESIS)
    links = head.extend(records)
    store.append(head, links, 5)
    assert [s.record() for s in store.links()] == records
    reread = store.head("writer-a")
    assert (reread.seq, reread.hash) == (3, links[-1].hash)
    (writer,) = store.writers()
    assert (writer.writer_id, writer.started_ns, writer.last_seq) == ("writer-a", 5, 3)


def test_reads_by_time_and_by_model(store: SqlStore, answers: Answers) -> None:
    times = [1_700_000_000_000_000_000 + t for t in (1_000, 3_000, 2_000, 4_000)]
    records = [answers.single(answered_ns=t) for t in times]
    head = store.head("w")
    store.append(head, head.extend(records), 0)
    by_time = [s.record().answered_ns for s in store.links(by_time=True)]
    assert by_time == sorted(times)
    window = [s.record().answered_ns for s in store.links(since_ns=times[2], until_ns=times[3])]
    assert window == [times[1], times[2]]  # by writer and seq, not by time
    assert list(store.links(model_versions=["0" * 64])) == []
    assert len(list(store.links(model_versions=[answers.version]))) == len(times)


def test_the_sqlite_file_and_its_wal_are_owner_only(tmp_path: Path, answers: Answers) -> None:
    config = RecordConfig(record_dir=tmp_path / "deep" / "record")
    with open_store(config) as store:
        store.migrate()
        head = store.head("w")
        store.append(head, head.extend([answers.single()]), 0)
        files = [config.sqlite_path, *(Path(f"{config.sqlite_path}-{s}") for s in ("wal", "shm"))]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}
    assert stat.S_IMODE(config.record_dir.stat().st_mode) == 0o700


def test_sqlite_runs_in_wal_with_full_synchronous_commits(tmp_path: Path) -> None:
    with open_store(RecordConfig(record_dir=tmp_path)) as store:
        assert store.execute("PRAGMA journal_mode") == [("wal",)]
        assert store.execute("PRAGMA synchronous") == [(2,)]  # 2 = FULL


def test_refuses_a_postgres_session_that_does_not_wait_for_the_flush(
    pg_server: PostgresServer,
) -> None:
    url = pg_server.url() + "?options=-c%20synchronous_commit%3Doff"
    store = open_store(RecordConfig(database_url=url))
    with pytest.raises(StoreError, match="synchronous_commit") as raised:
        store.connect()
    assert pg_server.password not in str(raised.value)
    with open_store(RecordConfig(database_url=pg_server.url())) as durable:
        assert durable.execute("SHOW synchronous_commit") == [("on",)]


def test_sqlite_writers_take_turns_at_a_lock_of_their_own(tmp_path: Path) -> None:
    """Two connections' write transactions never overlap, and the second starts as soon as the
    first ends: it waits on a lock file, not in SQLite's busy handler."""
    config = RecordConfig(record_dir=tmp_path / "record")
    first, second = open_store(config), open_store(config)
    entered = threading.Event()

    def other_writer() -> None:
        with second.write() as cur:
            cur.execute("SELECT 1")
            entered.set()

    turns = config.sqlite_path.with_name(config.sqlite_path.name + "-writers")
    try:
        with first.write():
            probe = os.open(turns, os.O_RDWR)
            try:  # the writers' lock is what is held, not only SQLite's
                with pytest.raises(BlockingIOError):
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(probe)
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert not entered.wait(0.5)  # held off while the first writes
        assert entered.wait(10)
        thread.join(10)
    finally:
        first.close()
        second.close()
    assert stat.S_IMODE(turns.stat().st_mode) == 0o600


@pytest.mark.parametrize("timeout", [0.3, None])
def test_a_write_waits_for_its_turn_only_as_long_as_it_may(
    tmp_path: Path, timeout: float | None
) -> None:
    """The writers' lock held by someone else for 1.5 s: a write with a turn timeout (feedback,
    a prune) gives up after it, a store error, and works once the lock is let go; a record
    writer's (no timeout) waits, and writes the moment it is let go."""
    config = RecordConfig(record_dir=tmp_path / "record")
    with open_store(config) as store:
        store.migrate()
        store.turn_timeout = timeout
        holder = os.open(
            config.sqlite_path.with_name(config.sqlite_path.name + "-writers"), os.O_RDWR
        )
        fcntl.flock(holder, fcntl.LOCK_EX)
        releaser = threading.Timer(1.5, os.close, (holder,))
        releaser.start()
        started = time.monotonic()
        try:
            if timeout is None:
                assert store.execute("SELECT 1") == [(1,)]
                assert time.monotonic() - started >= 1.5
            else:
                with pytest.raises(StoreError, match="write lock") as raised:
                    store.execute("SELECT 1")
                assert raised.value.reason == "store_error"
                assert timeout <= time.monotonic() - started < 1.5
        finally:
            releaser.join()
        assert store.execute("SELECT 1") == [(1,)]
