"""What `python -m app audit` does with the record: verify, replay, export, prune.

- verify: walk every writer's chain from its start (or from where prune cut it) and name each
  record that was altered (its hash no longer matches its values and its predecessor's hash),
  removed (a gap in the writer's sequence, or the tail shorter than the writer's head) or moved.
- replay: recompute the records made by one artifact with the scorer that answered them
  (`predict_one` for "single", `score_rows` for "batch", `explain` where an explanation was
  recorded) and compare the probability bit for bit, the class and the prediction set.
- export: one output row per scored row, streamed (constant memory).
- prune: delete the records older than a date without breaking verify (store.prune).
"""

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Final, Protocol

import numpy as np

from app.record.chain import GENESIS, canonical_values_hash
from app.record.entry import SET_BENIGN, SET_MALIGNANT, PredictionRecord, RecordError
from app.record.store import SqlStore, StoredLink, WriterHead
from model.artifact import Artifact
from model.conformal import set_membership, sorted_quantile
from model.features import CLASS_NAMES, FEATURE_NAMES


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # "altered", "removed", "orphan" (records of a writer the store has no head of)
    writer_id: str
    seq: int  # the first seq concerned
    last_seq: int  # the last (equal to seq for one record)
    request_id: str | None  # None for a removed record

    def describe(self) -> str:
        seqs = (
            f"seq {self.seq}" if self.seq == self.last_seq else f"seq {self.seq}..{self.last_seq}"
        )
        rid = f" request_id {self.request_id}" if self.request_id is not None else ""
        return f"{self.kind}: writer {self.writer_id} {seqs}{rid}"


# -- verify -----------------------------------------------------------------------------------
def verify(store: SqlStore) -> list[Problem]:
    """The chains' problems, read in one snapshot: the service may commit, and retention
    prune, while it runs."""
    with store.snapshot():
        return _verify(store)


def _verify(store: SqlStore) -> list[Problem]:
    heads = {w.writer_id: w for w in store.writers()}
    cuts = store.cuts()
    problems: list[Problem] = []
    seen: set[str] = set()
    for writer_id, links in groupby(store.links(), key=lambda link: link.writer_id):
        seen.add(writer_id)
        cut = cuts.get(writer_id)
        start = (cut.first_seq, cut.prev_hash) if cut else (1, GENESIS)
        problems.extend(_verify_chain(writer_id, links, start, heads.get(writer_id)))
    for writer_id, head in heads.items():  # writers whose every record is gone
        if writer_id not in seen:
            cut = cuts.get(writer_id)
            first = cut.first_seq if cut else 1
            if head.last_seq >= first:
                problems.append(Problem("removed", writer_id, first, head.last_seq, None))
    return problems


def _verify_chain(
    writer_id: str,
    links: Iterator[StoredLink],
    start: tuple[int, bytes],
    head: WriterHead | None,
) -> list[Problem]:
    problems = []
    expected, first_prev = start
    # The hashes the next record may chain to: the stored one, and after an altered record
    # also the one recomputed from it, so that an edited hash column names its record alone.
    prevs: tuple[bytes | None, ...] = (first_prev,)
    for link in links:
        if head is not None and link.seq > head.last_seq:  # past what the writer wrote: moved
            problems.append(Problem("altered", writer_id, link.seq, link.seq, _rid(link)))
            continue
        if link.seq > expected:  # a gap: the records between were deleted
            problems.append(Problem("removed", writer_id, expected, link.seq - 1, None))
            prevs = (link.hash,)
        elif link.seq < expected:
            problems.append(Problem("altered", writer_id, link.seq, link.seq, _rid(link)))
            prevs = (link.hash,)
        else:
            recomputed = [_hash(prev, link) for prev in prevs if prev is not None]
            if link.hash not in recomputed:
                problems.append(Problem("altered", writer_id, link.seq, link.seq, _rid(link)))
            prevs = (link.hash, *recomputed)[:3] if link.hash not in recomputed else (link.hash,)
        expected = link.seq + 1
    if head is None:
        problems.append(Problem("orphan", writer_id, start[0], expected - 1, None))
    elif head.last_seq >= expected:
        problems.append(Problem("removed", writer_id, expected, head.last_seq, None))
    elif head.last_seq == expected - 1 and head.last_hash not in prevs:
        problems.append(Problem("altered", writer_id, head.last_seq, head.last_seq, None))
    return problems


def _hash(prev: bytes, link: StoredLink) -> bytes | None:
    try:
        return canonical_values_hash(prev, link.writer_id, link.seq, link.values)
    except (TypeError, ValueError, OverflowError):  # a value of the wrong type: altered
        return None


def _rid(link: StoredLink) -> str | None:
    value = link.values[0]
    return value if isinstance(value, str) else None


# -- replay -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Difference:
    writer_id: str
    seq: int
    request_id: str | None
    row: int | None  # the row in its request; None when the whole record is unusable
    field: str
    recorded: str
    replayed: str

    def describe(self) -> str:
        where = f" row {self.row}" if self.row is not None else ""
        return (
            f"writer {self.writer_id} seq {self.seq} request_id {self.request_id}{where}: "
            f"{self.field} recorded {self.recorded}, replayed {self.replayed}"
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    records: int
    rows: int
    differences: list[Difference]


def model_versions(artifact: Artifact) -> list[str]:
    """The model_version values a record of this artifact may hold: its content hash, and
    the short form the service names it by."""
    return sorted({artifact.content_sha256, artifact.model_version})


def replay(store: SqlStore, artifact: Artifact, limit: int = 1_000) -> ReplayResult:
    """Recompute every record of `artifact`; up to `limit` differences are kept."""
    replayer = _Replayer(artifact)
    records = rows = 0
    differences: list[Difference] = []
    for link in store.links(model_versions=model_versions(artifact)):
        records += 1
        found = replayer.check(link)
        rows += replayer.last_rows
        differences.extend(found[: max(0, limit - len(differences))])
    return ReplayResult(records, rows, differences)


class _Replayer:
    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.benign = artifact.conformal.benign.tolist()
        self.malignant = artifact.conformal.malignant.tolist()
        self.last_rows = 0

    def check(self, link: StoredLink) -> list[Difference]:
        self.last_rows = 0
        try:
            record = link.record()
        except RecordError as exc:
            return [Difference(link.writer_id, link.seq, _rid(link), None, "record", str(exc), "-")]
        self.last_rows = record.n_rows
        p, explained = self._probabilities(record)
        diff = _Differ(link, record)
        diff.bits("probability", record.probability_array(), p)
        diff.equal("class", record.class_array(), p > record.threshold)
        if record.confidence is not None:
            diff.equal("prediction_set", record.set_array(), self._sets(p, record.confidence))
        if explained is not None:
            diff.bits("explanation", np.frombuffer(record.explanation or b"", "<f8"), explained)
        return diff.found

    def _probabilities(self, record: PredictionRecord) -> tuple[Any, Any]:
        matrix = record.score_matrix()
        if record.explanation is not None:  # /explain answers the explainer's probability
            e = self.artifact.explain(matrix[0].tolist())
            explained = np.array([e.base_probability, *e.phi_probability.tolist()])
            return np.array([e.probability]), explained
        if record.scorer == "single":
            return np.array([self.artifact.predict_one(row) for row in matrix.tolist()]), None
        return self.artifact.score_rows(matrix), None

    def _sets(self, p: Any, confidence: float) -> Any:
        qb = sorted_quantile(self.benign, confidence)
        qm = sorted_quantile(self.malignant, confidence)
        codes = []
        for value in p.tolist():
            benign, malignant = set_membership(value, qb, qm)
            codes.append(SET_BENIGN * benign + SET_MALIGNANT * malignant)
        return np.array(codes, dtype=np.uint8)


class _Differ:
    def __init__(self, link: StoredLink, record: PredictionRecord) -> None:
        self.link, self.record = link, record
        self.found: list[Difference] = []

    def bits(self, name: str, recorded: Any, replayed: Any) -> None:
        replayed = np.asarray(replayed, dtype="<f8")
        if recorded.shape != replayed.shape:
            self._add(name, None, str(recorded.shape), str(replayed.shape))
            return
        for i in np.flatnonzero(recorded.view(np.uint64) != replayed.view(np.uint64)).tolist():
            row = None if name == "explanation" else i
            self._add(name, row, repr(float(recorded[i])), repr(float(replayed[i])))

    def equal(self, name: str, recorded: Any, replayed: Any) -> None:
        for i in np.flatnonzero(np.asarray(recorded) != np.asarray(replayed)).tolist():
            self._add(name, i, str(recorded[i]), str(replayed[i]))

    def _add(self, name: str, row: int | None, recorded: str, replayed: str) -> None:
        link = self.link
        self.found.append(
            Difference(
                link.writer_id, link.seq, self.record.request_id, row, name, recorded, replayed
            )
        )


# -- export -----------------------------------------------------------------------------------
class ExtraColumns(Protocol):
    """A hook for columns another part adds to each exported row (the outcome feedback): their
    names, and their values for row `row` of a stored record."""

    names: tuple[str, ...]

    def values(self, link: StoredLink, record: PredictionRecord, row: int) -> tuple[Any, ...]: ...


# The columns every export has, in order; then each ExtraColumns' names.
SET_LABELS: Final = ("none", "benign", "malignant", "both")
BASE_COLUMNS: Final[tuple[str, ...]] = (
    "request_id",
    "row",
    "writer_id",
    "seq",
    "received_at",
    "answered_at",
    "route",
    "protocol",
    "encoding",
    "caller",
    "case_ref",
    "model_version",
    "service_version",
    "scorer",
    "threshold",
    "confidence",
    *FEATURE_NAMES,
    "probability",
    "class",
    "prediction_set",
    "base_value",
    *(f"contribution_{name}" for name in FEATURE_NAMES),
    "status",
    "latency_s",
)


def export_columns(extra: Sequence[ExtraColumns] = ()) -> tuple[str, ...]:
    return BASE_COLUMNS + tuple(name for columns in extra for name in columns.names)


def export_rows(
    store: SqlStore,
    since_ns: int | None,
    until_ns: int | None,
    extra: Sequence[ExtraColumns] = (),
    on_invalid: Callable[[StoredLink, RecordError], None] | None = None,
) -> Generator[tuple[Any, ...], None, None]:
    """One tuple per scored row (in `export_columns` order) of the records answered in
    [since_ns, until_ns), by answered time; a record that fails validation is passed to
    `on_invalid` and skipped."""
    for link in store.links(since_ns=since_ns, until_ns=until_ns, by_time=True):
        try:
            record = link.record()
        except RecordError as exc:
            if on_invalid is not None:
                on_invalid(link, exc)
            continue
        yield from _expand(link, record, extra)


def _expand(
    link: StoredLink, record: PredictionRecord, extra: Sequence[ExtraColumns]
) -> Iterator[tuple[Any, ...]]:
    head = (
        link.writer_id,
        link.seq,
        _iso(record.received_ns),
        _iso(record.answered_ns),
        record.route,
        record.protocol,
        record.encoding,
        record.caller,
        record.case_ref,
        record.model_version,
        record.service_version,
        record.scorer,
        record.threshold,
        record.confidence,
    )
    explained = record.explanation_values()
    explanation = (explained[0], *explained[1]) if explained else (None,) * (1 + len(FEATURE_NAMES))
    tail = (*explanation, record.status, record.latency_s)
    rows = zip(
        record.score_matrix().tolist(),
        record.probability_array().tolist(),
        record.class_array().tolist(),
        record.set_array().tolist(),
        strict=True,
    )
    for i, (scores, p, malignant, code) in enumerate(rows):
        added = tuple(v for columns in extra for v in columns.values(link, record, i))
        yield (
            record.request_id,
            i,
            *head,
            *scores,
            p,
            CLASS_NAMES[malignant],
            SET_LABELS[code],
            *tail,
            *added,
        )


def _iso(ns: int) -> str:
    """ISO 8601 UTC to the nanosecond (datetime stops at the microsecond)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = np.datetime64(seconds, "s").astype(str)
    return f"{stamp}.{fraction:09d}Z"
