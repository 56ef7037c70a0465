"""One answered request as the record keeps it: `PredictionRecord`.

A request that scored n rows (one for /predict and /explain, n for a batch or a V2 infer) is one
record: its per-row answers are packed into bytes (scores n x 9 uint8, probabilities n float64
little-endian, classes and prediction-set codes n bytes each), so a 10,000-row batch costs one
row in the store, and `audit export` expands it to one row per scored row.

Everything is validated on construction: a record that exists is well formed, and the store
never holds a value the answer could not have had. Times are integers (nanoseconds since the
Unix epoch, UTC) so that they hash and compare exactly.
"""

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from model.features import N_FEATURES, SCORE_MAX, SCORE_MIN

Protocol = Literal["native", "v2"]
Encoding = Literal["json", "binary"]
Scorer = Literal["single", "batch"]

PROTOCOLS: Final = ("native", "v2")
ENCODINGS: Final = ("json", "binary")
SCORERS: Final = ("single", "batch")

# Prediction-set codes: bit 0 = benign in the set, bit 1 = malignant in the set.
SET_NONE: Final = 0
SET_BENIGN: Final = 1
SET_MALIGNANT: Final = 2
SET_BOTH: Final = 3
SET_NAMES: Final[tuple[tuple[str, ...], ...]] = (
    (),
    ("benign",),
    ("malignant",),
    ("benign", "malignant"),
)

EXPLANATION_VALUES: Final = 1 + N_FEATURES  # base value, then one contribution per feature
MAX_ROWS: Final = 1_000_000  # far above any request the service accepts
MAX_TEXT: Final = 256  # request id, route, caller, versions: short identifiers, never a body

_CASE_REF: Final = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_TEXT: Final = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a header or a route can hold
_HEX: Final = re.compile(r"[0-9a-f]{12,64}")
_F64: Final = np.dtype("<f8")
_SCORE_CODES: Final = bytes(range(SCORE_MIN, SCORE_MAX + 1))
_SMALL: Final = 32  # rows up to which plain Python checks faster than NumPy


class RecordError(ValueError):
    """A PredictionRecord with a field the service cannot have answered."""


def valid_case_ref(value: str) -> bool:
    """True for an opaque caller reference the record may hold: 1 to 128 characters of
    `[A-Za-z0-9._:/+=@-]` (room for a UUID, a URN or a base64 hash, none for free text)."""
    return _CASE_REF.fullmatch(value) is not None


def epoch_ns(when: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (naive ones are refused: no guessing
    of a local zone)."""
    if when.tzinfo is None:
        raise RecordError("a naive datetime: give it a time zone (UTC)")
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def from_epoch_ns(ns: int) -> datetime:
    """The UTC datetime of `ns` (to the microsecond, datetime's resolution)."""
    return datetime.fromtimestamp(ns // 1_000 / 1_000_000, tz=UTC)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered request. Build it with `PredictionRecord.of(...)` from arrays; the fields
    are the stored form."""

    request_id: str
    received_ns: int  # UTC, nanoseconds since the epoch
    answered_ns: int
    route: str
    protocol: Protocol
    encoding: Encoding
    caller: str | None  # the API key's name, never the key
    case_ref: str | None
    model_version: str  # the artifact's content hash (Artifact.content_sha256)
    service_version: str
    scorer: Scorer  # which scorer answered: replay uses the same one
    threshold: float
    confidence: float | None
    scores: bytes  # n x 9 uint8, row-major
    probabilities: bytes  # n float64, little-endian
    classes: bytes  # n bytes, 1 = malignant
    sets: bytes  # n bytes, SET_* codes
    explanation: bytes | None  # 10 float64 little-endian: base value, nine contributions
    status: int
    latency_s: float

    def __post_init__(self) -> None:
        _check_text(self, ("request_id", "route", "service_version"))
        _check_optional(self)
        _check_choices(self)
        _check_numbers(self)
        _check_rows(self)

    @classmethod
    def of(cls, **answer: Any) -> "PredictionRecord":
        """A checked record from an answer's values, as `stored_fields` takes them."""
        return cls(**stored_fields(**answer))

    @property
    def n_rows(self) -> int:
        return len(self.classes)

    def score_matrix(self) -> NDArray[np.uint8]:
        """The (n, 9) scores, read-only."""
        return np.frombuffer(self.scores, dtype=np.uint8).reshape(-1, N_FEATURES)

    def probability_array(self) -> NDArray[np.float64]:
        return np.frombuffer(self.probabilities, dtype=_F64)

    def class_array(self) -> NDArray[np.bool_]:
        return np.frombuffer(self.classes, dtype=np.uint8).view(np.bool_)

    def set_array(self) -> NDArray[np.uint8]:
        return np.frombuffer(self.sets, dtype=np.uint8)

    def explanation_values(self) -> tuple[float, tuple[float, ...]] | None:
        """(base value, nine contributions), or None when the route explained nothing."""
        if self.explanation is None:
            return None
        values = np.frombuffer(self.explanation, dtype=_F64).tolist()
        return values[0], tuple(values[1:])


def stored_fields(
    *,
    request_id: str,
    received: datetime | int,
    answered: datetime | int,
    route: str,
    protocol: Protocol,
    encoding: Encoding,
    caller: str | None,
    case_ref: str | None,
    model_version: str,
    service_version: str,
    scorer: Scorer,
    threshold: float,
    confidence: float | None,
    scores: "NDArray[Any] | Sequence[Sequence[int]]",
    probabilities: "NDArray[Any] | Sequence[float]",
    classes: "NDArray[Any] | Sequence[bool]",
    sets: "NDArray[Any] | Sequence[int]",
    explanation: tuple[float, Sequence[float]] | None = None,
    status: int = 200,
    latency_s: float,
) -> dict[str, Any]:
    """The fields of the record of an answer, in their stored form, unchecked (the record
    checks them): scores (n, 9) whole numbers 1..10, probabilities (n,), classes (n,)
    booleans, sets (n,) codes 0..3, and for /explain the (base value, nine contributions) in
    probability."""
    return dict(
        request_id=request_id,
        received_ns=received if isinstance(received, int) else epoch_ns(received),
        answered_ns=answered if isinstance(answered, int) else epoch_ns(answered),
        route=route,
        protocol=protocol,
        encoding=encoding,
        caller=caller,
        case_ref=case_ref,
        model_version=model_version,
        service_version=service_version,
        scorer=scorer,
        # + 0.0: a -0.0 would hash with its sign, and SQLite's REAL reads it back as 0.0
        threshold=float(threshold) + 0.0,
        confidence=None if confidence is None else float(confidence),
        scores=pack_scores(scores),
        probabilities=pack_floats(probabilities),
        classes=pack_codes(classes, "classes", 1),
        sets=pack_codes(sets, "sets", SET_BOTH),
        explanation=None if explanation is None else pack_explanation(*explanation),
        status=int(status),
        latency_s=float(latency_s) + 0.0,
    )


def pack_explanation(base: float, contributions: Sequence[float]) -> bytes:
    values = np.array([base, *contributions], dtype=_F64)
    if values.shape != (EXPLANATION_VALUES,):
        raise RecordError(f"an explanation is a base value and {N_FEATURES} contributions")
    return values.tobytes()


def _check_text(record: PredictionRecord, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(record, name)
        if not isinstance(value, str) or len(value) > MAX_TEXT or not _TEXT.fullmatch(value):
            raise RecordError(f"{name} must be 1 to {MAX_TEXT} visible ASCII characters")


def _check_optional(record: PredictionRecord) -> None:
    if record.caller is not None:
        _check_text(record, ("caller",))
    if record.case_ref is not None and not (
        isinstance(record.case_ref, str) and valid_case_ref(record.case_ref)
    ):
        raise RecordError("case_ref must be 1 to 128 characters of [A-Za-z0-9._:/+=@-]")
    if not isinstance(record.model_version, str) or not _HEX.fullmatch(record.model_version):
        raise RecordError("model_version must be the artifact's content hash (lowercase hex)")


def _check_choices(record: PredictionRecord) -> None:
    for name, allowed in (
        ("protocol", PROTOCOLS),
        ("encoding", ENCODINGS),
        ("scorer", SCORERS),
    ):
        if getattr(record, name) not in allowed:
            raise RecordError(f"{name} must be one of {', '.join(allowed)}")


def _check_numbers(record: PredictionRecord) -> None:
    for name in ("received_ns", "answered_ns", "status"):
        if type(getattr(record, name)) is not int:
            raise RecordError(f"{name} must be an int")
    if not 0 <= record.received_ns <= record.answered_ns < 2**63:
        raise RecordError("received_ns and answered_ns must be 0 <= received <= answered < 2**63")
    if not 100 <= record.status <= 599:
        raise RecordError("status must be an HTTP status code")
    if not _finite(record.threshold) or not 0.0 <= record.threshold <= 1.0:
        raise RecordError("threshold must be in [0, 1]")
    if math.copysign(1.0, record.threshold) < 0 or math.copysign(1.0, record.latency_s) < 0:
        raise RecordError("threshold and latency_s must not be -0.0 (SQLite stores it as 0.0)")
    if record.confidence is not None and not (
        _finite(record.confidence) and 0.0 < record.confidence < 1.0
    ):
        raise RecordError("confidence must be in (0, 1)")
    if not _finite(record.latency_s) or record.latency_s < 0.0:
        raise RecordError("latency_s must be a finite number >= 0")


def _check_rows(record: PredictionRecord) -> None:
    n = _row_count(record)
    # bytes.translate deletes the allowed codes: whatever is left was not allowed (C speed at
    # any size, where a NumPy reduction costs microseconds even for one row)
    if record.scores.translate(None, _SCORE_CODES):
        raise RecordError(f"scores must be whole numbers {SCORE_MIN}..{SCORE_MAX}")
    if record.classes.translate(None, b"\x00\x01"):
        raise RecordError("classes must be 0 or 1")
    if record.sets.translate(None, b"\x00\x01\x02\x03"):
        raise RecordError("set codes must be 0..3")
    if not _all_probabilities(record.probabilities, n):
        raise RecordError("probabilities must be in [0, 1]")
    if record.explanation is not None:
        _check_explanation(record.explanation)


def _row_count(record: PredictionRecord) -> int:
    """The record's rows, once its row fields are bytes that hold the same number of rows."""
    for name in ("scores", "probabilities", "classes", "sets"):
        if not isinstance(getattr(record, name), bytes):
            raise RecordError(f"{name} must be bytes")
    n = len(record.classes)
    if not 1 <= n <= MAX_ROWS:
        raise RecordError(f"a record holds 1 to {MAX_ROWS} rows")
    if len(record.scores) != n * N_FEATURES or len(record.probabilities) != n * 8:
        raise RecordError("scores, probabilities, classes and sets must hold the same rows")
    if len(record.sets) != n:
        raise RecordError("scores, probabilities, classes and sets must hold the same rows")
    return n


def _check_explanation(raw: Any) -> None:
    if not isinstance(raw, bytes) or len(raw) != EXPLANATION_VALUES * 8:
        raise RecordError(f"explanation must be {EXPLANATION_VALUES} float64 values")
    if not all(math.isfinite(v) for v in struct.unpack(f"<{EXPLANATION_VALUES}d", raw)):
        raise RecordError("explanation values must be finite")


def _all_probabilities(raw: bytes, n: int) -> bool:
    if n <= _SMALL:
        return all(0.0 <= p <= 1.0 for p in struct.unpack(f"<{n}d", raw))  # NaN fails
    p = np.frombuffer(raw, dtype=_F64)
    return bool(((p >= 0.0) & (p <= 1.0)).all())


def pack_scores(scores: "NDArray[Any] | Sequence[Sequence[int]]") -> bytes:
    """(n, 9) whole numbers as n x 9 bytes (their range is checked on construction)."""
    if not isinstance(scores, np.ndarray):
        rows = [list(row) for row in scores]
        if any(len(row) != N_FEATURES for row in rows):
            raise RecordError(f"scores must be rows of {N_FEATURES}")
        try:  # bytes() refuses a float or a value outside 0..255
            return bytes(v for row in rows for v in row)
        except (TypeError, ValueError):
            raise RecordError(f"scores must be whole numbers {SCORE_MIN}..{SCORE_MAX}") from None
    if scores.ndim != 2 or scores.shape[1] != N_FEATURES:
        raise RecordError(f"scores must be (n, {N_FEATURES}), not {scores.shape}")
    if scores.dtype != np.uint8:
        whole = scores.dtype.kind in "iu" or np.array_equal(scores, np.rint(scores))
        if not whole or (scores.size and (scores.min() < SCORE_MIN or scores.max() > SCORE_MAX)):
            raise RecordError(f"scores must be whole numbers {SCORE_MIN}..{SCORE_MAX}")
    return np.ascontiguousarray(scores, dtype=np.uint8).tobytes()


def pack_floats(values: "NDArray[Any] | Sequence[float]") -> bytes:
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=_F64).tobytes()
    try:
        items = list(values)
        return struct.pack(f"<{len(items)}d", *items)
    except (TypeError, struct.error):
        raise RecordError("probabilities must be numbers") from None


def pack_codes(values: "NDArray[Any] | Sequence[int]", name: str, largest: int) -> bytes:
    """Booleans or small codes as one byte each (their range is checked on construction)."""
    if isinstance(values, np.ndarray):
        if values.dtype == np.bool_ or values.dtype == np.uint8:
            return np.ascontiguousarray(values).view(np.uint8).tobytes()
        if values.size and (values.min() < 0 or values.max() > largest):
            raise RecordError(f"{name} must be 0..{largest}")
        return np.ascontiguousarray(values, dtype=np.uint8).tobytes()
    try:
        return bytes(int(v) for v in values)
    except (TypeError, ValueError):
        raise RecordError(f"{name} must be 0..{largest}") from None


def _finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)
