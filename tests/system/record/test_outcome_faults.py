"""Outcomes where a reviewer broke them: two writers of one row's outcome at once on
PostgreSQL, and a store that is busy when an outcome or the figures are asked for."""

import fcntl
import itertools
import os
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from app.record.config import RecordConfig
from app.record.outcomes import Stored, put_outcome
from app.record.store import TURN_TIMEOUT_SECONDS, open_store
from model.features import FEATURE_NAMES
from tests.live_server import start_server
from tests.postgres import PostgresServer
from tests.unit.core.test_confirmed import Record

ROW = dict(zip(FEATURE_NAMES, (5, 1, 1, 1, 2, 1, 3, 1, 1), strict=True))
ROWS = 50
_names = itertools.count()


def test_one_rows_outcome_sent_twice_at_once_on_postgresql(pg_server: PostgresServer) -> None:
    """A retry or two workers: one is created, the other unchanged, neither fails."""
    config = RecordConfig(database_url=pg_server.database(f"outcome_race_{next(_names)}"))
    with open_store(config) as store:
        store.migrate()
        answered = Record(store).predict(ROWS)
    results: list[Stored | BaseException] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        with open_store(config) as mine:
            for row in range(ROWS):
                barrier.wait()
                try:
                    results.append(
                        put_outcome(
                            mine,
                            answered.request_id,
                            row,
                            "benign",
                            source=None,
                            caller=None,
                            now_ns=time.time_ns(),
                        )
                    )
                except Exception as exc:  # any failure is what is tested
                    results.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status if isinstance(r, Stored) else repr(r) for r in results)
    assert statuses == ["created"] * ROWS + ["unchanged"] * ROWS


def test_a_busy_store_is_a_503_for_an_outcome(tmp_path: Path) -> None:
    """Another writer (a backup, the sqlite3 shell) holds SQLite's write lock: the outcome
    cannot be stored, and the client is told to try again, not that the server broke."""
    with start_server({"RECORD_DIR": str(tmp_path)}) as live:
        request_id = httpx.post(f"{live.url}/predict", json=ROW).headers["X-Request-ID"]
        holder = sqlite3.connect(tmp_path / "record.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            sent = httpx.post(
                f"{live.url}/feedback",
                json={"request_id": request_id, "outcome": "benign"},
                timeout=60,
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert sent.status_code == 503, sent.text
        assert sent.json()["detail"][0]["type"] == "record_unavailable"
        assert sent.headers["Retry-After"] == "1"
        again = httpx.post(
            f"{live.url}/feedback", json={"request_id": request_id, "outcome": "benign"}
        )
        assert again.status_code == 200  # the lock let go: the same outcome is taken


def test_a_write_lock_never_let_go_is_a_503_for_an_outcome_not_a_hang(tmp_path: Path) -> None:
    """A hung writer, or another program, holds the writers' own lock (the flock they take in
    turn before SQLite's): the outcome is refused within SQLite's busy wait, as above, instead
    of waiting as long as the lock is held; let go, the same outcome is taken."""
    with start_server({"RECORD_DIR": str(tmp_path)}) as live:
        request_id = httpx.post(f"{live.url}/predict", json=ROW).headers["X-Request-ID"]
        holder = os.open(tmp_path / "record.sqlite3-writers", os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            started = time.monotonic()
            sent = httpx.post(
                f"{live.url}/feedback",
                json={"request_id": request_id, "outcome": "benign"},
                timeout=60,
            )
            waited = time.monotonic() - started
        finally:
            os.close(holder)  # lets go of the lock
        assert sent.status_code == 503, sent.text
        assert sent.json()["detail"][0]["type"] == "record_unavailable"
        assert TURN_TIMEOUT_SECONDS <= waited < TURN_TIMEOUT_SECONDS + 20
        again = httpx.post(
            f"{live.url}/feedback", json={"request_id": request_id, "outcome": "benign"}
        )
        assert again.status_code == 200, again.text


def test_every_worker_answers_an_outcome_another_stored(tmp_path: Path) -> None:
    """Each worker keeps its figures for MONITORING_REFRESH_SECONDS (30 s here): an outcome
    stored through one must still show at once through the other."""
    env = {"RECORD_DIR": str(tmp_path), "MONITORING_REFRESH_SECONDS": "30"}
    with start_server(env, workers=2) as live, httpx.Client(base_url=live.url) as client:
        request_id = client.post("/predict", json=ROW).headers["X-Request-ID"]
        for _ in range(20):  # new connections: both workers compute and keep their figures
            assert httpx.get(f"{live.url}/monitoring").json()["cases"] == 0
        sent = client.post("/feedback", json={"request_id": request_id, "outcome": "benign"})
        assert sent.status_code == 200
        seen = [httpx.get(f"{live.url}/monitoring").json()["cases"] for _ in range(20)]
        assert seen == [1] * 20
