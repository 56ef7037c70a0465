"""SQLite's WAL checkpoints off the commit path: the writer's connection never copies the WAL
into the database file, a Checkpointer thread does, and it says when the WAL outgrew its cap."""

import asyncio
import time
from pathlib import Path

import pytest

from app.record.audit import verify
from app.record.checkpoint import Checkpointer
from app.record.config import RecordConfig
from app.record.recorder import Recorder
from app.record.store import SqlStore, open_store
from tests.record_records import Answers, commit
from tests.system.record.test_audit import append

PAGE = 4096
RECORDS = 48  # of 5,000 rows (95 KB): about 1,500 pages, past SQLite's checkpoint at 1,000


def sqlite_config(tmp_path: Path) -> RecordConfig:
    return RecordConfig(record_dir=tmp_path / "record")


def wait_until(condition: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("deferred", [True, False])
def test_a_deferring_connection_leaves_the_wal_uncopied(
    tmp_path: Path, answers: Answers, deferred: bool
) -> None:
    config = sqlite_config(tmp_path)
    with open_store(config) as store:
        store.migrate()
        if deferred:
            store.tune_for_commits()
        before = config.sqlite_path.stat().st_size
        record = answers.batch(5_000)
        for _ in range(RECORDS):
            append(store, "w", [record])
        grown = config.sqlite_path.stat().st_size - before
        if deferred:
            assert grown == 0  # every page is still in the WAL
            pages = store.checkpoint()
            assert pages > 1_000
            assert config.sqlite_path.stat().st_size - before > (pages // 2) * PAGE
        else:
            assert grown > 500 * PAGE  # SQLite's own checkpoint, in a commit
        assert verify(store) == []


def test_the_recorders_wal_is_copied_by_its_checkpointer(tmp_path: Path, answers: Answers) -> None:
    config = sqlite_config(tmp_path)
    recorder = Recorder.from_config(config)
    assert recorder.start() == (True, None)
    records = [answers.batch(5_000) for _ in range(4)] * (RECORDS // 4)
    size = config.sqlite_path.stat().st_size

    async def commit_all() -> None:
        await asyncio.gather(*(commit(recorder, r) for r in records))

    try:
        asyncio.run(commit_all())
        # copied in the background while the writer waits for more: the file holds them
        assert wait_until(lambda: config.sqlite_path.stat().st_size > size + 1_000 * PAGE)
    finally:
        recorder.close()
    with open_store(config) as store:
        assert len(list(store.links())) == RECORDS
        assert verify(store) == []


@pytest.mark.parametrize(("cap", "over"), [(1, True), (100_000, False)])
def test_the_checkpointer_says_when_the_wal_outgrew_its_cap(
    tmp_path: Path, answers: Answers, cap: int, over: bool
) -> None:
    config = sqlite_config(tmp_path)
    with open_store(config) as store:
        store.migrate()
        store.tune_for_commits()
        append(store, "w", [answers.batch(1_000)])
        checkpointer = Checkpointer(lambda: open_store(config), cap, min_interval=0)
        checkpointer.start()
        try:
            checkpointer.nudge()
            assert wait_until(lambda: checkpointer.checkpoints >= 1)
        finally:
            checkpointer.stop()
        assert checkpointer.over_cap is over
        assert isinstance(store, SqlStore)
