"""Tamper evidence: every record is a link in its writer's hash chain.

A writer (one per process start: `new_writer_id`) numbers its records 1, 2, 3, ... and stores
with each `hash = sha256(prev_hash || canonical_bytes(writer_id, seq, record))`, where
prev_hash is the hash of its record seq - 1 (32 zero bytes before the first). Changing a stored
value breaks that record's hash; deleting one leaves a gap in the sequence; moving one changes
the seq its hash was made with; cutting the tail leaves the writer's head (stored in the same
transaction as the records) ahead of the last record. `audit verify` checks all four.

Canonical bytes are a fixed binary layout, independent of platform, locale and Python's float
formatting: the tag b"PR1", then each field in the order of `FIELDS`:
- str: its UTF-8 length as 4 bytes big-endian, then the UTF-8 bytes;
- int: 8 bytes big-endian two's complement;
- float: the IEEE 754 binary64 bits, 8 bytes big-endian (so 0.0 and -0.0 differ; NaN never
  reaches here, PredictionRecord refuses it);
- bytes: 4 bytes big-endian length, then the bytes;
- an optional field: one byte 0 when absent, else 1 followed by the value as above.
"""

import functools
import hashlib
import operator
import os
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.record.entry import PredictionRecord, RecordError

GENESIS: Final = bytes(32)  # prev_hash of a writer's first record
TAG: Final = b"PR1"

# (field, kind, optional) in canonical order; the record's fields after writer_id and seq.
FIELDS: Final[tuple[tuple[str, str, bool], ...]] = (
    ("request_id", "str", False),
    ("received_ns", "int", False),
    ("answered_ns", "int", False),
    ("route", "str", False),
    ("protocol", "str", False),
    ("encoding", "str", False),
    ("caller", "str", True),
    ("case_ref", "str", True),
    ("model_version", "str", False),
    ("service_version", "str", False),
    ("scorer", "str", False),
    ("threshold", "float", False),
    ("confidence", "float", True),
    ("scores", "bytes", False),
    ("probabilities", "bytes", False),
    ("classes", "bytes", False),
    ("sets", "bytes", False),
    ("explanation", "bytes", True),
    ("status", "int", False),
    ("latency_s", "float", False),
)

FIELD_NAMES: Final = tuple(name for name, _, _ in FIELDS)
# A record's field values, in FIELDS' order: `field_bytes`' arguments, the store's columns.
record_fields: Final = operator.attrgetter(*FIELD_NAMES)
_LEN: Final = struct.Struct(">I")
_INT: Final = struct.Struct(">q")
_FLOAT: Final = struct.Struct(">d")
_TWO_INTS: Final = struct.Struct(">qq")
_INT_FLOAT: Final = struct.Struct(">qd")


def new_writer_id() -> str:
    """Unique per process start: the host, the pid and 64 random bits (a pid is reused after
    a restart, and hosts share pids)."""
    host = socket.gethostname().encode("ascii", "replace").decode()[:64] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(8)}"


def canonical_bytes(writer_id: str, seq: int, record: PredictionRecord) -> bytes:
    """`canonical_values` of a record, written out field by field: a third of the general
    walk's cost. tests/unit/record/test_chain.py holds the two to the same bytes."""
    return b"".join((TAG, _same_str(writer_id), _INT.pack(seq), record_bytes(record)))


def record_bytes(record: PredictionRecord) -> bytes:
    """The record's fields as its canonical bytes hold them (after the writer and the seq):
    also the form in which a record reaches the writer process (app/record/wire.py)."""
    return field_bytes(*record_fields(record))


def field_bytes(  # a record's fields, in PredictionRecord's order
    request_id: str,
    received_ns: int,
    answered_ns: int,
    route: str,
    protocol: str,
    encoding: str,
    caller: str | None,
    case_ref: str | None,
    model_version: str,
    service_version: str,
    scorer: str,
    threshold: float,
    confidence: float | None,
    scores: bytes,
    probabilities: bytes,
    classes: bytes,
    sets: bytes,
    explanation: bytes | None,
    status: int,
    latency_s: float,
) -> bytes:
    """`record_bytes` of the record these fields make, without making it."""
    return b"".join(
        (
            _str(request_id),
            _TWO_INTS.pack(received_ns, answered_ns),
            _same_str(route),
            _same_str(protocol),
            _same_str(encoding),
            b"\x00" if caller is None else b"\x01" + _same_str(caller),
            b"\x00" if case_ref is None else b"\x01" + _str(case_ref),
            _same_str(model_version),
            _same_str(service_version),
            _same_str(scorer),
            _FLOAT.pack(threshold),
            b"\x00" if confidence is None else b"\x01" + _FLOAT.pack(confidence),
            _LEN.pack(len(scores)),
            scores,
            _LEN.pack(len(probabilities)),
            probabilities,
            _LEN.pack(len(classes)),
            classes,
            _LEN.pack(len(sets)),
            sets,
            b"\x00" if explanation is None else b"\x01" + _LEN.pack(len(explanation)),
            b"" if explanation is None else explanation,
            _INT_FLOAT.pack(status, latency_s),
        )
    )


def record_from_bytes(payload: bytes) -> PredictionRecord:
    """The record whose `record_bytes` are `payload`, checked as any record is; RecordError if
    they are not a record's. Read field by field in `record_bytes`' order, as it writes them
    (test_wire holds the two to each other): the writer process decodes every record it
    commits, and a loop over FIELDS took 12% more instructions."""
    r = _Reader(payload)
    try:
        request_id = r.text()
        received_ns, answered_ns = r.number(_TWO_INTS)
        # protocol, encoding and scorer are any text here: the record checks them
        route, protocol, encoding = r.text(), r.text(), r.text()
        caller = r.text() if r.present() else None
        case_ref = r.text() if r.present() else None
        model_version, service_version, scorer = r.text(), r.text(), r.text()
        (threshold,) = r.number(_FLOAT)
        confidence = r.number(_FLOAT)[0] if r.present() else None
        scores, probabilities, classes, sets = r.blob(), r.blob(), r.blob(), r.blob()
        explanation = r.blob() if r.present() else None
        status, latency_s = r.number(_INT_FLOAT)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"a record's bytes cut short or malformed ({exc})") from None
    if r.at != len(payload):
        raise RecordError("bytes after a record's last field")
    return PredictionRecord(
        request_id=request_id,
        received_ns=received_ns,
        answered_ns=answered_ns,
        route=route,
        protocol=protocol,  # type: ignore[arg-type]
        encoding=encoding,  # type: ignore[arg-type]
        caller=caller,
        case_ref=case_ref,
        model_version=model_version,
        service_version=service_version,
        scorer=scorer,  # type: ignore[arg-type]
        threshold=threshold,
        confidence=confidence,
        scores=scores,
        probabilities=probabilities,
        classes=classes,
        sets=sets,
        explanation=explanation,
        status=status,
        latency_s=latency_s,
    )


class _Reader:
    """A cursor over a record's canonical bytes."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def blob(self) -> bytes:
        (length,) = _LEN.unpack_from(self.data, self.at)
        start = self.at + 4
        end = start + length
        if end > len(self.data):
            raise RecordError("a field longer than its record")
        self.at = end
        return self.data[start:end]

    def text(self) -> str:
        return self.blob().decode("utf-8")

    def number(self, layout: struct.Struct) -> tuple[Any, ...]:
        values = layout.unpack_from(self.data, self.at)
        self.at += layout.size
        return values

    def present(self) -> bool:
        """An optional field's presence byte: 1 when the field follows, 0 when absent."""
        flag = self.data[self.at]
        self.at += 1
        if flag > 1:
            raise RecordError("a presence byte other than 0 or 1")
        return flag == 1


def canonical_values(writer_id: str, seq: int, values: Sequence[object]) -> bytes:
    """The canonical bytes of a record given as its values in FIELDS order (as stored: a value
    of the wrong type raises TypeError, which verify reports as an altered record)."""
    if len(values) != len(FIELDS):
        raise ValueError(f"{len(FIELDS)} values expected")
    parts = [TAG, _str(writer_id), _INT.pack(seq)]
    for (_, kind, optional), value in zip(FIELDS, values, strict=True):
        if optional:
            if value is None:
                parts.append(b"\x00")
                continue
            parts.append(b"\x01")
        parts.append(_encode(kind, value))
    return b"".join(parts)


def link_hash(prev_hash: bytes, writer_id: str, seq: int, record: PredictionRecord) -> bytes:
    digest = hashlib.sha256(prev_hash)
    digest.update(canonical_bytes(writer_id, seq, record))
    return digest.digest()


def canonical_values_hash(
    prev_hash: bytes, writer_id: str, seq: int, values: Sequence[object]
) -> bytes:
    return hashlib.sha256(prev_hash + canonical_values(writer_id, seq, values)).digest()


@dataclass(frozen=True, slots=True)
class Link:
    """A record with its place in its writer's chain, as stored."""

    writer_id: str
    seq: int
    hash: bytes
    record: PredictionRecord


@dataclass(slots=True)
class ChainHead:
    """A writer's last link: the next record gets seq + 1 and chains to `hash`."""

    writer_id: str
    seq: int = 0
    hash: bytes = GENESIS

    def extend(self, records: list[PredictionRecord]) -> list[Link]:
        """The links for `records` after this head; the head itself moves only when the
        caller `advance`s it to the last link, once those links are committed."""
        links = []
        seq, prev = self.seq, self.hash
        for record in records:
            seq += 1
            prev = link_hash(prev, self.writer_id, seq, record)
            links.append(Link(self.writer_id, seq, prev, record))
        return links

    def advance(self, last: Link) -> None:
        self.seq, self.hash = last.seq, last.hash


def _encode(kind: str, value: object) -> bytes:
    if kind == "str" and isinstance(value, str):
        return _str(value)
    if kind == "int" and type(value) is int:
        return _INT.pack(value)
    if kind == "float" and type(value) is float:
        return _FLOAT.pack(value)
    if kind == "bytes" and isinstance(value, bytes):
        return _LEN.pack(len(value)) + value
    raise TypeError(f"a {kind} was expected, not {type(value).__name__}")


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _LEN.pack(len(raw)) + raw


# The fields most records share (the writer, the route, the versions, the caller): encoded once.
_same_str: Final = functools.lru_cache(maxsize=1_024)(_str)
