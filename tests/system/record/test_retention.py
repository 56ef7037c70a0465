"""Retention on a live service: with RECORD_RETENTION_DAYS it deletes the records older than that
by itself, on SQLite and PostgreSQL, keeps every newer one and its own, and verify stays green."""

import time
from collections.abc import Iterator

import httpx
import pytest

from app.openapi.examples import BENIGN
from app.record.audit import verify
from app.record.config import RecordConfig
from app.record.retention import Retention
from app.record.store import SqlStore
from tests.live_server import LiveServer, start_server
from tests.record_records import Answers
from tests.system.record.test_audit import DAY_NS, append

PREDICTIONS = 3


def server_env(config: RecordConfig) -> dict[str, str]:
    env = {"RECORD_RETENTION_DAYS": "365", "RECORD_PRUNE_INTERVAL_SECONDS": "1"}
    if config.database_url:
        env["DATABASE_URL"] = config.database_url
    else:
        env["RECORD_DIR"] = str(config.record_dir)
    return env


def chains(store: SqlStore) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for link in store.links():
        found.setdefault(link.writer_id, []).append(link.seq)
    return found


@pytest.fixture
def pruning(store: SqlStore, config: RecordConfig, answers: Answers) -> Iterator[LiveServer]:
    """A store with records from two earlier writers, some older than a year, under a live
    service keeping a year."""
    now = time.time_ns()
    old, recent = now - 400 * DAY_NS, now - 10 * DAY_NS
    append(store, "earlier", [answers.single(answered_ns=old) for _ in range(3)])
    append(store, "earlier", [answers.batch(4, answered_ns=recent) for _ in range(2)])
    append(store, "old-only", [answers.single(answered_ns=old) for _ in range(2)])
    with start_server(server_env(config)) as live:
        yield live


def test_the_service_prunes_what_is_older_than_its_retention(
    pruning: LiveServer, store: SqlStore
) -> None:
    for _ in range(PREDICTIONS):
        assert httpx.post(f"{pruning.url}/predict", json=BENIGN, timeout=10).status_code == 200
    deadline = time.monotonic() + 30
    found = chains(store)
    while time.monotonic() < deadline and ("old-only" in found or found["earlier"][0] != 4):
        time.sleep(0.2)
        found = chains(store)
    service = [w for w in found if w not in ("earlier", "old-only")]
    assert found == {"earlier": [4, 5], service[0]: list(range(1, PREDICTIONS + 1))}
    assert verify(store) == []
    assert {c.writer_id: c.first_seq for c in store.cuts().values()} == {
        "earlier": 4,
        "old-only": 3,
    }
    # the live writer's own chain grows on after the prune, and is checked with the rest
    assert httpx.post(f"{pruning.url}/predict", json=BENIGN, timeout=10).status_code == 200
    assert verify(store) == []
    assert "record retention: deleted 5 record(s)" in pruning.stderr()


@pytest.mark.parametrize("batch", [1, 2, 1_000])
def test_pruning_in_batches_cuts_as_one_prune_does(
    store: SqlStore, config: RecordConfig, answers: Answers, batch: int
) -> None:
    now = time.time_ns()
    append(store, "w", [answers.single(answered_ns=now - 50 * DAY_NS) for _ in range(7)])
    append(store, "w", [answers.single(answered_ns=now - DAY_NS) for _ in range(2)])
    rounds = []
    while deleted := store.prune(now - 30 * DAY_NS, now, max_records=batch):
        rounds.append(deleted["w"])
        assert verify(store) == []  # after every batch, not only at the end
    assert sum(rounds) == 7
    assert max(rounds) <= batch
    assert chains(store) == {"w": [8, 9]}
    assert Retention(config, 30, 1).prune_once(now) == 0  # nothing left to prune
