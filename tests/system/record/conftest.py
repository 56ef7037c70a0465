"""Fixtures of the record's system tests: every store test runs on SQLite and on a real
PostgreSQL server (tests/postgres.py), through the `config` fixture.

Tests that stop, restart or suspend PostgreSQL take `stoppable_pg`, a server of their own: the
session's `pg_server` is shared by every other test, which must never find it stopped."""

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.record.config import RecordConfig
from app.record.store import SqlStore, open_store
from tests.postgres import PostgresServer
from tests.record_records import Answers

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


def _running_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from _running_server()


@pytest.fixture(scope="session")
def _stoppable_pg_server() -> Iterator[PostgresServer]:
    yield from _running_server()


@pytest.fixture
def stoppable_pg(_stoppable_pg_server: PostgresServer) -> PostgresServer:
    """A PostgreSQL server that this test may stop and start; running when the test begins,
    whatever the test before it left."""
    if not _stoppable_pg_server.running():
        _stoppable_pg_server.start()
    return _stoppable_pg_server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> RecordConfig:
    """An empty store of the backend: a fresh SQLite folder, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return RecordConfig(record_dir=tmp_path / "record")
    server: PostgresServer = request.getfixturevalue("pg_server")
    return RecordConfig(database_url=server.database(f"record_{next(_names)}"))


@pytest.fixture
def store(config: RecordConfig) -> Iterator[SqlStore]:
    with open_store(config) as s:
        s.migrate()
        yield s


@pytest.fixture(scope="session")
def answers() -> Answers:
    return Answers()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs (mount needs root and CAP_SYS_ADMIN; without it this fails rather
    than pretend: an unwritable folder does not stop root, who runs CI)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 65_536)
                f.flush()
        except OSError:
            pass
    return filler
