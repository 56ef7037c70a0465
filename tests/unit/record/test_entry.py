"""PredictionRecord: what it accepts, what it refuses, and that its packed form reads back."""

from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from app.record import wire
from app.record.chain import FIELD_NAMES, field_bytes, record_bytes
from app.record.entry import (
    PredictionRecord,
    RecordError,
    epoch_ns,
    stored_fields,
    valid_case_ref,
)

HASH = "ab" * 32


def answer(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": "7f1c-req",
        "received": datetime(2026, 12, 6, 21, 0, tzinfo=UTC),
        "answered": datetime(2026, 12, 6, 21, 0, 0, 1500, tzinfo=UTC),
        "route": "/predict/batch",
        "protocol": "native",
        "encoding": "json",
        "caller": "clinic-a",
        "case_ref": "urn:case:42",
        "model_version": HASH,
        "service_version": "0.1.0",
        "scorer": "batch",
        "threshold": 0.5,
        "confidence": 0.9,
        "scores": [[1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 10, 10, 10, 10, 10, 10, 10, 10]],
        "probabilities": [0.125, 0.875],
        "classes": [False, True],
        "sets": [1, 3],
        "latency_s": 0.002,
    }
    return {**values, **changes}


def make(**changes: Any) -> PredictionRecord:
    return PredictionRecord.of(**answer(**changes))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("urn:case:42", True),
        ("a", True),
        ("A-z_0.9:/+=@x", True),
        ("case#1", False),
        ("50%", False),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("has space", False),
        ("é", False),
        ("line\nbreak", False),
        ("dGVzdA==", True),
    ],
)
def test_valid_case_ref(value: str, valid: bool) -> None:
    assert valid_case_ref(value) is valid


def test_arrays_read_back_as_given() -> None:
    r = make(explanation=(0.3, [0.01 * i for i in range(9)]))
    assert r.n_rows == 2
    assert r.score_matrix().tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9], [10] * 9]
    assert r.probability_array().tolist() == [0.125, 0.875]
    assert r.class_array().tolist() == [False, True]
    assert r.set_array().tolist() == [1, 3]
    assert r.explanation_values() == (0.3, tuple(0.01 * i for i in range(9)))
    assert r.answered_ns - r.received_ns == 1_500_000
    assert r.probabilities == np.array([0.125, 0.875], dtype="<f8").tobytes()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"scores": [[1] * 8]}, "scores must be"),
        ({"scores": [[0] * 9, [1] * 9]}, "whole numbers 1..10"),
        ({"scores": [[11] * 9, [1] * 9]}, "whole numbers 1..10"),
        ({"scores": [[1.5] * 9, [1] * 9]}, "whole numbers"),
        ({"probabilities": [0.1]}, "same rows"),
        ({"probabilities": [0.1, float("nan")]}, r"in \[0, 1\]"),
        ({"probabilities": [0.1, 1.5]}, r"in \[0, 1\]"),
        ({"classes": [0, 2]}, "classes must be 0"),
        ({"sets": np.array([0, 9])}, "sets must be 0..3"),
        ({"scores": np.array([[1.5] * 9])}, "whole numbers"),
        ({"scores": [[257] + [1] * 8]}, "whole numbers"),
        ({"sets": [0, 4]}, "0..3"),
        ({"sets": [0]}, "same rows"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"confidence": 1.0}, "confidence"),
        ({"status": 99}, "status"),
        ({"latency_s": -0.1}, "latency_s"),
        ({"received": datetime(2026, 12, 7, tzinfo=UTC)}, "received <= answered"),
        ({"answered": datetime(2026, 12, 7)}, "naive"),
        ({"caller": "has space"}, "caller"),
        ({"caller": ""}, "caller"),
        ({"case_ref": "x" * 129}, "case_ref"),
        ({"request_id": "r" * 257}, "request_id"),
        ({"model_version": "ABC"}, "model_version"),
        ({"protocol": "grpc"}, "protocol"),
        ({"encoding": "xml"}, "encoding"),
        ({"scorer": "other"}, "scorer"),
        ({"explanation": (0.1, [0.0] * 8)}, "explanation"),
        ({"explanation": (float("inf"), [0.0] * 9)}, "finite"),
    ],
)
def test_refuses_what_no_answer_could_hold(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        make(**changes)
    # The event loop sends its records unchecked: the writer's decoding refuses the same.
    with pytest.raises(RecordError, match=problem):
        wire.decode_record(field_bytes(**stored_fields(**answer(**changes))))


def test_the_bytes_of_unchecked_fields_are_those_of_the_checked_record() -> None:
    sent, checked = field_bytes(**stored_fields(**answer())), make()
    assert sent == record_bytes(checked)
    assert wire.decode_record(sent) == checked


def test_a_record_is_immutable() -> None:
    r = make()
    with pytest.raises(AttributeError):
        r.threshold = 0.1  # type: ignore[misc]


def test_the_chain_hashes_every_field_in_the_records_order() -> None:
    assert tuple(f.name for f in fields(PredictionRecord)) == FIELD_NAMES


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=5, minutes=30)])
def test_epoch_ns_is_exact_in_any_zone(offset: timedelta) -> None:
    when = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(offset))
    expected = int(when.timestamp()) * 1_000_000_000 + 123_456_000
    assert epoch_ns(when) == expected
