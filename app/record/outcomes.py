"""Confirmed outcomes of recorded predictions (POST /feedback), kept beside the record.

An outcome belongs to one scored row: (request_id, row). Storing the same outcome again changes
nothing; a different one is a conflict unless the caller says it is a correction, which is then
kept in `outcome_corrections` with what it replaced: nothing is overwritten silently.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from app.record.entry import PredictionRecord
from app.record.store import SqlStore, StoredLink

Outcome = Literal["benign", "malignant"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("benign", "malignant")
_F64: Final = np.dtype("<f8")


class UnknownPredictionError(LookupError):
    """No recorded prediction has that request id, or it has no such row."""


class OutcomeConflictError(Exception):
    def __init__(self, stored: str) -> None:
        super().__init__(stored)
        self.stored = stored


@dataclass(frozen=True, slots=True)
class Stored:
    status: Literal["created", "unchanged", "corrected"]
    outcome: Outcome
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmedCase:
    """A recorded prediction and the outcome confirmed for it."""

    request_id: str
    row: int
    probability: float
    set_code: int
    threshold: float
    malignant: bool  # the outcome
    caller: str | None  # who made the prediction
    scores: tuple[int, ...]
    answered_ns: int


def put_outcome(
    store: SqlStore,
    request_id: str,
    row: int,
    outcome: Outcome,
    *,
    source: str | None,
    caller: str | None,
    now_ns: int,
    correction: bool = False,
) -> Stored:
    """Store `outcome` for row `row` of request `request_id` in one transaction."""
    with store.write() as cur:
        cur.execute(
            store.dialect.sql("SELECT n_rows FROM records WHERE request_id = ?"), (request_id,)
        )
        sizes = [int(r[0]) for r in cur.fetchall()]
        if not any(0 <= row < n for n in sizes):
            raise UnknownPredictionError(request_id)
        if store.dialect.name == "postgresql":
            # Two requests for one row at once (a retry, two workers) would both find no
            # outcome and the second insert fail: the second waits here, then reads the first's.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), %s)", (request_id, row))
        cur.execute(
            store.dialect.sql(
                "SELECT outcome FROM outcomes WHERE request_id = ? AND row_index = ?"
            ),
            (request_id, row),
        )
        found = cur.fetchall()
        if not found:
            cur.execute(
                store.dialect.sql(
                    "INSERT INTO outcomes (request_id, row_index, outcome, source, caller,"
                    " recorded_ns) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (request_id, row, outcome, source, caller, now_ns),
            )
            return Stored("created", outcome)
        previous = str(found[0][0])
        if previous == outcome:
            return Stored("unchanged", outcome)
        if not correction:
            raise OutcomeConflictError(previous)
        cur.execute(
            store.dialect.sql(
                "INSERT INTO outcome_corrections (request_id, row_index, previous, outcome,"
                " source, caller, recorded_ns) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            (request_id, row, previous, outcome, source, caller, now_ns),
        )
        cur.execute(
            store.dialect.sql(
                "UPDATE outcomes SET outcome = ?, source = ?, caller = ?, recorded_ns = ?"
                " WHERE request_id = ? AND row_index = ?"
            ),
            (outcome, source, caller, now_ns, request_id, row),
        )
        return Stored("corrected", outcome, previous)


# After the outcome's own order: its request id's records in answered order, so that the first
# one holding the row comes first (held_first keeps it).
_HOLDERS_ORDER: Final = "r.answered_ns, r.writer_id, r.seq"


def held_first(rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """Of rows (request id, row index, ..., n_rows last) joining outcomes to records, in
    _HOLDERS_ORDER within each (request id, row): the one of the first record that holds the
    row. A client that sent one request id twice has two records; the outcome is one case."""
    held: set[tuple[str, int]] = set()
    for r in rows:
        key = (str(r[0]), int(r[1]))
        if 0 <= key[1] < int(r[-1]) and key not in held:
            held.add(key)
            yield r


def limited_to_model(
    model_version: str | None, sql: str, alias: str = ""
) -> tuple[str, tuple[str, ...]]:
    """`sql` limited to the records made with `model_version`, when given; with its parameters.
    `sql` holds "{model}" where the condition goes (after a WHERE)."""
    if model_version is None:
        return sql.format(model="TRUE"), ()
    return sql.format(model=f"{alias}model_version = ?"), (model_version,)


def confirmed_cases(store: SqlStore, model_version: str | None = None) -> Iterator[ConfirmedCase]:
    """Every recorded row with a confirmed outcome, in the order the outcomes arrived; only the
    rows answered by `model_version` (an artifact's content hash) when given."""
    sql, parameters = limited_to_model(
        model_version,
        "SELECT o.request_id, o.row_index, o.outcome, r.probabilities, r.sets, r.threshold,"  # noqa: S608 - fixed names only
        " r.caller, r.scores, r.answered_ns, r.n_rows"
        " FROM outcomes o JOIN records r ON r.request_id = o.request_id WHERE {model}"
        f" ORDER BY o.recorded_ns, o.request_id, o.row_index, {_HOLDERS_ORDER}",
        "r.",
    )
    with store.transaction() as cur:
        cur.execute(store.dialect.sql(sql), parameters)
        rows = held_first(cur.fetchall())
    for request_id, row, outcome, probs, sets, threshold, caller, scores, answered, _ in rows:
        row = int(row)
        probabilities = np.frombuffer(bytes(probs), dtype=_F64)
        matrix = np.frombuffer(bytes(scores), dtype=np.uint8).reshape(-1, 9)
        yield ConfirmedCase(
            request_id=str(request_id),
            row=row,
            probability=float(probabilities[row]),
            set_code=int(bytes(sets)[row]),
            threshold=float(threshold),
            malignant=outcome == "malignant",
            caller=None if caller is None else str(caller),
            scores=tuple(int(v) for v in matrix[row]),
            answered_ns=int(answered),
        )


def recent_inputs(
    store: SqlStore, rows: int, model_version: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The scores and probabilities of the last `rows` recorded rows, oldest first; only those
    answered by `model_version` when given."""
    sql, parameters = limited_to_model(
        model_version,
        "SELECT scores, probabilities FROM records WHERE {model} ORDER BY answered_ns DESC",
    )
    scores: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    have = 0
    with store.transaction() as cur:
        cur.execute(store.dialect.sql(sql), parameters)
        while have < rows:
            fetched = cur.fetchmany(256)
            if not fetched:
                break
            for s, p in fetched:
                scores.append(np.frombuffer(bytes(s), dtype=np.uint8).reshape(-1, 9))
                probabilities.append(np.frombuffer(bytes(p), dtype=_F64))
                have += len(probabilities[-1])
    if not scores:
        return np.empty((0, 9), dtype=np.uint8), np.empty(0)
    matrix = np.concatenate(scores[::-1])[-rows:]
    return matrix, np.concatenate(probabilities[::-1])[-rows:]


class OutcomeColumns:
    """The outcome columns of `python -m app audit export`: the confirmed outcome of each row,
    where it came from and when it was stored (empty for rows with none). A request id sent
    twice has two records: the outcome goes with the row of the first answered that holds it,
    as monitoring counts it (`confirmed_cases`), not with both. The outcomes are read once, at
    the start: there is one per confirmed row, far fewer than rows in a record."""

    names: tuple[str, ...] = ("outcome", "outcome_source", "outcome_at_ns")

    def __init__(self, store: SqlStore) -> None:
        with store.transaction() as cur:
            cur.execute(
                "SELECT o.request_id, o.row_index, o.outcome, o.source, o.recorded_ns,"  # noqa: S608 - fixed names only
                " r.writer_id, r.seq, r.n_rows"
                " FROM outcomes o JOIN records r ON r.request_id = o.request_id"
                f" ORDER BY o.request_id, o.row_index, {_HOLDERS_ORDER}"
            )
            held = held_first(cur.fetchall())
        self._by_row = {
            (str(request_id), int(row), str(writer_id), int(seq)): (outcome, source, int(at))
            for request_id, row, outcome, source, at, writer_id, seq, _ in held
        }

    def values(self, link: StoredLink, record: PredictionRecord, row: int) -> tuple[Any, ...]:
        key = (record.request_id, row, link.writer_id, link.seq)
        return self._by_row.get(key, (None, None, None))
