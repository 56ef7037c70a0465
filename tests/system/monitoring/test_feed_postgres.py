"""CaseFeed (app/core/confirmed.py) on a real PostgreSQL server: the same cases as SQLite's
(tests/unit/core/test_confirmed.py), read in one repeatable-read snapshot, equal to a monitor
rebuilt from `confirmed_cases` after new outcomes, a correction, a late outcome and a prune;
another model's answers left out."""

import itertools
from collections.abc import Iterator

import pytest

from app.core.confirmed import CaseFeed
from app.monitoring.typicality import Typicality
from app.record.config import RecordConfig
from app.record.store import open_store
from model.artifact import Artifact
from tests.postgres import PostgresServer
from tests.unit.core.test_confirmed import (
    CALLERS,
    NS,
    WINDOW,
    Change,
    Record,
    assert_same,
    check_another_models_answers_are_left_out,
    correct,
    late,
    late_at_the_same_time,
    pruned,
)

_names = itertools.count()


@pytest.fixture
def record(pg_server: PostgresServer) -> Iterator[Record]:
    config = RecordConfig(database_url=pg_server.database(f"feed_{next(_names)}"))
    with open_store(config) as store:
        store.migrate()
        yield Record(store)


@pytest.fixture(scope="module")
def typicality(artifact: Artifact) -> Typicality:
    return Typicality.from_artifact(artifact)


@pytest.mark.parametrize("change", [correct, late, late_at_the_same_time, pruned])
def test_the_feed_equals_a_rebuild_on_postgresql(
    record: Record, typicality: Typicality, change: Change
) -> None:
    feed = CaseFeed(typicality, CALLERS, WINDOW, None)
    first = record.predict(3, answered_ns=NS - 10)
    second = record.predict(3, answered_ns=NS - 5)
    record.outcome(first, 0, "malignant", NS + 10)
    record.outcome(first, 1, "malignant", NS + 20)
    record.outcome(second, 0, "benign", NS + 20)
    assert_same(feed, record, typicality)
    record.outcome(second, 1, "malignant", NS + 30)
    assert_same(feed, record, typicality)
    assert feed.rebuilds == 1  # the second read took only the new outcome
    change(record)
    assert_same(feed, record, typicality)
    assert feed.rebuilds == 2


def test_the_answers_of_another_model_are_left_out_on_postgresql(
    record: Record, typicality: Typicality
) -> None:
    check_another_models_answers_are_left_out(record, typicality)
