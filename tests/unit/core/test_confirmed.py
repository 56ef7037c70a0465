"""CaseFeed (app/core/confirmed.py): after every update its monitor equals one rebuilt from
`confirmed_cases` over a real SQLite store, reading only new outcomes while that is right and
everything again when a correction, a late outcome or a prune would make it wrong; given the
served model's version, the answers of another model are no case and no recent input."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.core.confirmed import CaseFeed
from app.monitoring.state import Case, Monitor
from app.monitoring.typicality import Typicality
from app.record.chain import ChainHead
from app.record.config import RecordConfig
from app.record.entry import PredictionRecord
from app.record.outcomes import confirmed_cases, put_outcome, recent_inputs
from app.record.store import SqlStore, open_store
from tests.record_records import Answers

CALLERS = ("clinic-a",)
WINDOW = 7


class Record:
    """A real store, records appended through the chain, outcomes through put_outcome."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.answers = Answers(seed=3)
        self.head = ChainHead("feed-test")
        self.records: list[PredictionRecord] = []

    def predict(
        self, rows: int, answered_ns: int | None = None, **extra: object
    ) -> PredictionRecord:
        record = self.answers.batch(rows, answered_ns, **extra)
        links = self.head.extend([record])
        self.store.append(self.head, links, 0)
        self.head.advance(links[-1])
        self.records.append(record)
        return record

    def outcome(
        self, record: PredictionRecord, row: int, outcome: str, at: int, fix: bool = False
    ) -> None:
        put_outcome(
            self.store,
            record.request_id,
            row,
            outcome,  # type: ignore[arg-type]
            source=None,
            caller=None,
            now_ns=at,
            correction=fix,
        )


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Record]:
    with open_store(RecordConfig(tmp_path)) as store:
        store.migrate()
        yield Record(store)


@pytest.fixture(scope="module")
def typicality(artifact: object) -> Typicality:
    return Typicality.from_artifact(artifact)  # type: ignore[arg-type]


@pytest.fixture
def feed(typicality: Typicality) -> CaseFeed:
    return CaseFeed(typicality, CALLERS, WINDOW, None)


def rebuilt(store: SqlStore, typicality: Typicality, model_version: str | None = None) -> Monitor:
    cases = [
        Case(
            probability=c.probability,
            outcome=int(c.malignant),
            set_code=c.set_code,
            threshold=c.threshold,
            atypical=typicality.is_atypical(list(c.scores)),
            caller=c.caller,
        )
        for c in confirmed_cases(store, model_version)
    ]
    return Monitor.rebuild(cases, CALLERS, WINDOW)


def assert_same(
    feed: CaseFeed, record: Record, typicality: Typicality, model_version: str | None = None
) -> None:
    mine = feed.update(record.store).snapshot()
    theirs = rebuilt(record.store, typicality, model_version).snapshot()
    assert (mine.cases, mine.overall, mine.callers) == (
        theirs.cases,
        theirs.overall,
        theirs.callers,
    )


NS = 1_700_000_000_000_000_000


def test_new_outcomes_are_read_without_a_rebuild(
    feed: CaseFeed, record: Record, typicality: Typicality
) -> None:
    assert len(feed.update(record.store)) == 0
    at = NS
    for step in range(6):
        answered = record.predict(5)
        for row in range(5):
            at += 1 if (step + row) % 3 else 0  # some outcomes share their time
            record.outcome(answered, row, ("benign", "malignant")[row % 2], at)
        assert_same(feed, record, typicality)
    assert len(feed.monitor) == 30
    assert feed.rebuilds == 1  # the first read only


Change = Callable[[Record], None]


def correct(record: Record) -> None:
    record.outcome(record.records[0], 1, "benign", NS + 50, fix=True)


def late(record: Record) -> None:  # committed after later ones were read, with an older time
    record.outcome(record.records[1], 2, "malignant", NS + 1)


def late_at_the_same_time(record: Record) -> None:  # sorts before the last held case
    record.outcome(record.records[0], 2, "benign", NS + 20)


def pruned(record: Record) -> None:
    record.store.prune(record.records[1].answered_ns, time.time_ns())


@pytest.mark.parametrize("change", [correct, late, late_at_the_same_time, pruned])
def test_a_change_a_new_read_would_miss_rebuilds(
    feed: CaseFeed, record: Record, typicality: Typicality, change: Change
) -> None:
    first = record.predict(3, answered_ns=NS - 10)
    second = record.predict(3, answered_ns=NS - 5)
    record.outcome(first, 0, "malignant", NS + 10)
    record.outcome(first, 1, "malignant", NS + 20)
    record.outcome(second, 0, "benign", NS + 20)
    assert_same(feed, record, typicality)
    assert feed.rebuilds == 1
    change(record)
    assert_same(feed, record, typicality)
    assert feed.rebuilds == 2
    third = record.predict(1)
    record.outcome(third, 0, "benign", NS + 100)
    assert_same(feed, record, typicality)
    assert feed.rebuilds == 2  # and new outcomes are read alone again


def test_a_request_id_recorded_twice_is_one_case(
    feed: CaseFeed, record: Record, typicality: Typicality
) -> None:
    """A client may send one X-Request-ID twice (a retry): its outcome is one case, the first
    answered record's row, whether the second record came before or after the outcome."""

    def predict(answered_ns: int) -> PredictionRecord:
        answer = record.answers.batch(2, answered_ns, request_id="retried-id")
        links = record.head.extend([answer])
        record.store.append(record.head, links, 0)
        record.head.advance(links[-1])
        record.records.append(answer)
        return answer

    first = predict(NS - 10)
    record.outcome(first, 0, "malignant", NS + 10)
    assert_same(feed, record, typicality)
    predict(NS - 5)  # the retry, recorded after the outcome
    assert_same(feed, record, typicality)
    assert feed.update(record.store).snapshot().cases == 1
    record.outcome(first, 1, "benign", NS + 20)
    assert_same(feed, record, typicality)
    assert feed.update(record.store).snapshot().cases == 2
    assert [c.probability for c in confirmed_cases(record.store)] == [
        float(first.probability_array()[0]),
        float(first.probability_array()[1]),
    ]


OTHER_MODEL = "0" * 64  # the content hash of an artifact served before (or beside) this one


def test_the_answers_of_another_model_are_no_case_and_no_recent_input(
    record: Record, typicality: Typicality
) -> None:
    check_another_models_answers_are_left_out(record, typicality)


def check_another_models_answers_are_left_out(record: Record, typicality: Typicality) -> None:
    """The served model's feed and recent inputs, after answers of two models and outcomes."""
    served = record.answers.version
    feed = CaseFeed(typicality, CALLERS, WINDOW, None, served)
    ours = record.predict(3, answered_ns=NS - 10)
    theirs = record.predict(2, answered_ns=NS - 5, model_version=OTHER_MODEL)
    for row in range(3):
        record.outcome(ours, row, ("benign", "malignant")[row % 2], NS + row)
    for row in range(2):
        record.outcome(theirs, row, "malignant", NS + 10 + row)
    assert len(list(confirmed_cases(record.store))) == 5  # the control: every model's
    cases = confirmed_cases(record.store, served)
    assert [(c.request_id, c.row) for c in cases] == [(ours.request_id, r) for r in range(3)]
    assert_same(feed, record, typicality, served)
    later = record.predict(1, model_version=OTHER_MODEL)
    record.outcome(later, 0, "benign", NS + 30)
    assert_same(feed, record, typicality, served)  # read alone, and still left out
    assert feed.update(record.store).snapshot().cases == 3
    assert feed.rebuilds == 1
    rows, probabilities = recent_inputs(record.store, 10, served)
    assert rows.tolist() == np.frombuffer(ours.scores, dtype=np.uint8).reshape(-1, 9).tolist()
    assert probabilities.tolist() == ours.probability_array().tolist()
    assert len(recent_inputs(record.store, 10)[0]) == 6  # every model's
