"""The confirmed cases of the record's store, kept up to date by reading only what is new.

`CaseFeed.update(store)` returns a `Monitor` holding exactly what
`app.record.outcomes.confirmed_cases(store, model_version)` yields, in its order (outcomes by
recorded_ns, request id, row; one case per outcome: the row of the first answered record with its
request id that holds that row, since a client may send one X-Request-ID twice). Given a model
version, only the records that model made count: the figures are the served model's, and the
outcome of another model's answer yields no case, as a pruned record's does.

The first update reads every outcome; a later one reads only the outcomes stored at or after the
last one it holds, and the records they name, so its cost grows with what arrived, not with what
is held.

It reads everything again (a rebuild) whenever reading only the new outcomes could be wrong:

- a correction was stored (the outcome of a held case changed): the corrections' count moved;
- an outcome arrived out of order (another worker or replica committed it after a later one
  was read): it sorts before the last held case, or the outcomes' count is not the held count
  plus the new ones;
- records were pruned (their cases leave the figures): the chain cuts changed.

Every worker and replica holds its own feed over the shared store; each equals a rebuild, so a
restart, which rebuilds, loses nothing and changes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from app.monitoring.figures import Cases, Figures
from app.monitoring.state import Monitor
from app.monitoring.typicality import Typicality
from app.record.outcomes import limited_to_model
from app.record.store import SqlStore

_F64: Final = np.dtype("<f8")
_OUTCOMES: Final = (
    "SELECT request_id, row_index, outcome, recorded_ns FROM outcomes"
    " WHERE recorded_ns >= ? ORDER BY recorded_ns, request_id, row_index"
)
_RECORDS: Final = (
    "SELECT request_id, probabilities, sets, threshold, caller, scores, n_rows FROM records"
    " WHERE request_id IN (SELECT request_id FROM outcomes WHERE recorded_ns >= ?)"
    " AND {model} ORDER BY answered_ns, writer_id, seq"
)
_FINGERPRINT: Final = (
    "SELECT (SELECT COUNT(*) FROM outcomes), (SELECT COUNT(*) FROM outcome_corrections),"
    " (SELECT COUNT(*) FROM chain_cuts), (SELECT COALESCE(SUM(first_seq), 0) FROM chain_cuts)"
)

# One snapshot for the whole read: SQLite's read transaction is one already; PostgreSQL's
# default (read committed) would let a commit land between the fingerprint and the fetch.
_SNAPSHOT: Final = {"sqlite": "BEGIN", "postgresql": "BEGIN ISOLATION LEVEL REPEATABLE READ"}

Key = tuple[int, str, int]  # recorded_ns, request_id, row: confirmed_cases' order


@dataclass
class _Held:
    """What the feed's monitor holds, to tell what is new."""

    outcomes: int = 0  # outcome rows read (a pruned record's outcome yields no case)
    fingerprint: tuple[int, ...] = ()  # (outcomes, corrections, cuts, sum of first seqs)
    last: Key | None = None
    at_last: set[tuple[str, int]] = field(default_factory=set)  # held keys at last's time


class CaseFeed:
    """One process's monitor of the confirmed cases, fed from the store (module docstring)."""

    def __init__(
        self,
        typicality: Typicality,
        callers: Sequence[str],
        window: int,
        validated: Figures | None,
        model_version: str | None = None,
    ) -> None:
        self.typicality = typicality
        self._records, self._model = limited_to_model(model_version, _RECORDS)
        self.callers = tuple(callers)
        self.window = window
        self.validated = validated
        self.monitor = Monitor(self.callers, window, validated)
        self._held: _Held | None = None
        self.rebuilds = 0  # full reads, the first included

    def update(self, store: SqlStore) -> Monitor:
        """The monitor, brought up to date with `store` (read in one transaction)."""
        with store.transaction(_SNAPSHOT[store.dialect.name]) as cur:
            fingerprint = _fetch_fingerprint(store, cur)
            held = self._held
            if held is None or fingerprint[1:] != held.fingerprint[1:]:
                return self._rebuild(store, cur, fingerprint)
            since = 0 if held.last is None else held.last[0]
            outcomes = [
                o
                for o in _fetch(store, cur, _OUTCOMES, since)
                if (str(o[0]), int(o[1])) not in held.at_last
            ]
            in_order = held.last is None or not outcomes or _key(outcomes[0]) > held.last
            if not in_order or held.outcomes + len(outcomes) != fingerprint[0]:
                return self._rebuild(store, cur, fingerprint)
            if outcomes:
                records = _fetch(store, cur, self._records, since, *self._model)
                self._append(outcomes, records)
                self._remember(held, outcomes, fingerprint)
        return self.monitor

    def changed(self, store: SqlStore) -> bool:
        """Whether outcomes arrived, were corrected or were pruned since the last update, in
        this process or another (each worker has its own feed): one query of counts."""
        if self._held is None:
            return True
        with store.transaction() as cur:
            return _fetch_fingerprint(store, cur) != self._held.fingerprint

    def _rebuild(self, store: SqlStore, cur: Any, fingerprint: tuple[int, ...]) -> Monitor:
        self.rebuilds += 1
        self.monitor = Monitor(self.callers, self.window, self.validated)
        outcomes = _fetch(store, cur, _OUTCOMES, 0)
        self._append(outcomes, _fetch(store, cur, self._records, 0, *self._model))
        self._held = _Held()
        self._remember(self._held, outcomes, fingerprint)
        return self.monitor

    def _remember(self, held: _Held, outcomes: list[Any], fingerprint: tuple[int, ...]) -> None:
        held.outcomes += len(outcomes)
        held.fingerprint = fingerprint
        if outcomes:
            last = _key(outcomes[-1])
            if held.last is None or last[0] != held.last[0]:
                held.at_last = set()
            held.last = last
            held.at_last |= {(str(o[0]), int(o[1])) for o in outcomes if int(o[3]) == last[0]}

    def _append(self, outcomes: list[Any], records: list[Any]) -> None:
        by_request: dict[str, list[Any]] = {}
        for record in records:
            by_request.setdefault(str(record[0]), []).append(record)
        columns: list[tuple[float, int, int, float, str | None, bytes]] = []
        for request_id, row, outcome, _ in outcomes:
            row = int(row)
            for _, probs, sets, threshold, caller, scores, n in by_request.get(request_id, ()):
                if 0 <= row < int(n):  # the first answered record holding the row: one case
                    p = float(np.frombuffer(bytes(probs), dtype=_F64)[row])
                    case_scores = bytes(scores)[9 * row : 9 * row + 9]
                    caller_name = None if caller is None else str(caller)
                    y = int(outcome == "malignant")
                    columns.append(
                        (p, y, bytes(sets)[row], float(threshold), caller_name, case_scores)
                    )
                    break
        if columns:
            self._extend(columns)

    def _extend(self, columns: list[tuple[float, int, int, float, str | None, bytes]]) -> None:
        p, y, s, t, callers, scores = zip(*columns, strict=True)
        rows = np.frombuffer(b"".join(scores), dtype=np.uint8).reshape(-1, 9)
        atypical = self.typicality.atypical_rows(rows.astype(np.int64))
        self.monitor.extend(Cases.of(p, y, s, t, atypical), callers)


def _key(outcome: Any) -> Key:
    return (int(outcome[3]), str(outcome[0]), int(outcome[1]))


def _fetch(store: SqlStore, cur: Any, sql: str, since: int, *more: str) -> list[Any]:
    cur.execute(store.dialect.sql(sql), (since, *more))
    return list(cur.fetchall())


def _fetch_fingerprint(store: SqlStore, cur: Any) -> tuple[int, ...]:
    cur.execute(store.dialect.sql(_FINGERPRINT))
    return tuple(int(v) for v in cur.fetchone())
