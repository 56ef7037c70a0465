"""The hash chain: canonical bytes laid out as documented, and every field in the hash."""

import hashlib
import os
import struct
from dataclasses import replace
from typing import Any

import pytest

from app.record.chain import (
    FIELD_NAMES,
    GENESIS,
    ChainHead,
    canonical_bytes,
    canonical_values,
    link_hash,
    new_writer_id,
)
from app.record.entry import RecordError
from tests.unit.record.test_entry import make


def spelled_out(writer: str, seq: int, r: Any) -> bytes:
    """The layout of app/record/chain.py's docstring, written out field by field."""

    def s(v: str) -> bytes:
        return struct.pack(">I", len(v.encode())) + v.encode()

    def b(v: bytes) -> bytes:
        return struct.pack(">I", len(v)) + v

    def opt(v: Any, enc: Any) -> bytes:
        return b"\x00" if v is None else b"\x01" + enc(v)

    return b"".join(
        [
            b"PR1",
            s(writer),
            struct.pack(">q", seq),
            s(r.request_id),
            struct.pack(">q", r.received_ns),
            struct.pack(">q", r.answered_ns),
            s(r.route),
            s(r.protocol),
            s(r.encoding),
            opt(r.caller, s),
            opt(r.case_ref, s),
            s(r.model_version),
            s(r.service_version),
            s(r.scorer),
            struct.pack(">d", r.threshold),
            opt(r.confidence, lambda v: struct.pack(">d", v)),
            b(r.scores),
            b(r.probabilities),
            b(r.classes),
            b(r.sets),
            opt(r.explanation, b),
            struct.pack(">q", r.status),
            struct.pack(">d", r.latency_s),
        ]
    )


@pytest.mark.parametrize(
    "changes",
    [{}, {"caller": None, "case_ref": None, "confidence": None}, {"explanation": (0.5, [0.1] * 9)}],
)
def test_canonical_bytes_follow_the_documented_layout(changes: dict[str, Any]) -> None:
    r = make(**changes)
    assert canonical_bytes("host:1:ab", 7, r) == spelled_out("host:1:ab", 7, r)
    # what verify hashes: the general walk over the values as stored
    values = [getattr(r, name) for name in FIELD_NAMES]
    assert canonical_bytes("host:1:ab", 7, r) == canonical_values("host:1:ab", 7, values)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("request_id", "other"),
        ("received_ns", 1),
        ("route", "/predict"),
        ("caller", None),
        ("case_ref", None),
        ("threshold", -0.0 + 0.5000000000000001),
        ("confidence", None),
        ("scores", bytes([1] * 18)),
        ("status", 201),
        ("latency_s", 0.0020000000000000005),
    ],
)
def test_every_field_changes_the_hash(name: str, value: Any) -> None:
    r = make()
    changed = replace(r, **{name: value})
    assert link_hash(GENESIS, "w", 1, changed) != link_hash(GENESIS, "w", 1, r)


def test_zero_and_negative_zero_differ() -> None:
    """A stored -0.0 hashes apart from 0.0 (which is why a record never holds one: SQLite's
    REAL reads it back as 0.0)."""
    r = make(threshold=0.0)
    values = [getattr(r, name) for name in FIELD_NAMES]
    signed = [
        -0.0 if name == "threshold" else v for name, v in zip(FIELD_NAMES, values, strict=True)
    ]
    assert canonical_values("w", 1, values) != canonical_values("w", 1, signed)
    with pytest.raises(RecordError):
        replace(r, threshold=-0.0)


def test_links_chain_each_to_the_last() -> None:
    records = [make(request_id=f"r{i}") for i in range(3)]
    head = ChainHead("w", 4, b"\x01" * 32)
    links = head.extend(records)
    assert [link.seq for link in links] == [5, 6, 7]
    prev = b"\x01" * 32
    for link, record in zip(links, records, strict=True):
        assert link.hash == hashlib.sha256(prev + canonical_bytes("w", link.seq, record)).digest()
        prev = link.hash
    assert (head.seq, head.hash) == (4, b"\x01" * 32)  # not moved before the commit
    head.advance(links[-1])
    assert (head.seq, head.hash) == (7, links[-1].hash)


def test_writer_ids_are_unique_per_start() -> None:
    ids = {new_writer_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(f":{os.getpid()}:" in i for i in ids)
