"""The request's side of the record: who called, as the key guard named it, and when."""

import asyncio
import time
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pytest
from starlette.requests import Request

from app.core.recording import caller_name, record
from app.core.request_id import set_request_id
from app.core.version import package_version
from app.record import wire
from app.record.chain import record_bytes
from app.record.entry import PredictionRecord


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, None),  # a service without keys: the guard names nobody
        ({"recorder": object()}, None),  # the lifespan's state, no caller
        ({"caller": "clinic-a"}, "clinic-a"),
    ],
)
def test_caller_name_is_what_the_key_guard_set(state: dict[str, object], expected: str) -> None:
    request = Request({"type": "http"})
    for name, value in state.items():
        setattr(request.state, name, value)  # as the guard and the lifespan set it
    assert caller_name(request) == expected


def test_a_request_without_state_has_no_caller() -> None:
    assert caller_name(Request({"type": "http"})) is None


class Committed:
    """A recorder that keeps what it is given."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, int]] = []

    async def commit(self, payload: bytes, rows: int) -> None:
        self.entries.append((payload, rows))


def request_to(
    recorder: Committed,
    headers: list[tuple[bytes, bytes]] | None = None,
    state: dict[str, Any] | None = None,
) -> Request:
    """A request to an app whose recorder is `recorder`, with these headers and this state."""
    model = SimpleNamespace(artifact=SimpleNamespace(content_sha256="ab" * 32))
    app = SimpleNamespace(state=SimpleNamespace(recorder=recorder, model=model))
    scope = {"type": "http", "app": app, "headers": headers or []}
    if state is not None:
        scope["state"] = state
    return Request(scope)


def record_predict(request: Request, **answer: Any) -> None:
    """`record` as /predict calls it (/predict/batch's scorer for several rows)."""
    scorer: Literal["single", "batch"] = "single" if len(answer["probabilities"]) == 1 else "batch"
    asyncio.run(
        record(
            request, route="/predict", protocol="native", encoding="json", scorer=scorer, **answer
        )
    )


def test_a_clock_stepped_back_still_makes_a_record_the_writer_takes() -> None:
    recorder = Committed()
    request = request_to(recorder)
    set_request_id("stepped-back", received=time.time_ns() + 60 * 10**9)  # the clock then fell

    record_predict(
        request,
        rows=[[5, 1, 1, 1, 2, 1, 3, 1, 1]],
        probabilities=[0.1],
        malignant=[False],
        sets=[1],
        threshold=0.5,
        confidence=0.95,
    )
    ((payload, rows),) = recorder.entries
    checked = wire.decode_record(payload)  # the writer's check: no RecordError
    assert rows == 1
    assert checked.received_ns == checked.answered_ns
    assert checked.latency_s == 0.0


ROWS = [[5, 1, 1, 1, 2, 1, 3, 1, 1], [8, 10, 10, 8, 7, 10, 9, 7, 1]]


@pytest.mark.parametrize(
    "answer",
    [
        {"rows": ROWS[:1], "probabilities": [0.1], "malignant": [False], "sets": [1]},
        {  # as V2 answers: NumPy arrays
            "rows": np.array(ROWS, dtype=np.int64),
            "probabilities": np.array([0.01, 0.99]),
            "malignant": np.array([False, True]),
            "sets": np.array([1, 2], dtype=np.uint8),
        },
        {  # as /explain answers, at a threshold of -0.0 and no confidence
            "rows": ROWS[1:],
            "probabilities": [0.99],
            "malignant": [True],
            "sets": [3],
            "threshold": -0.0,
            "confidence": None,
            "explanation": (0.3, [0.1, -0.05, 0.0, 0.2, 0.1, 0.1, 0.1, 0.05, 0.09]),
        },
    ],
)
def test_the_bytes_sent_are_those_of_the_checked_record(answer: dict[str, Any]) -> None:
    """The request path builds a record's bytes without a PredictionRecord: they are the bytes
    of the record `PredictionRecord.of` checks, made of the same answer."""
    recorder = Committed()
    request = request_to(recorder, [(b"x-case-reference", b"urn:case:42")], {"caller": "a"})
    received = time.time_ns()
    set_request_id("same-bytes", received=received)
    values = {"threshold": 0.2, "confidence": 0.95, **answer}
    record_predict(request, **values)
    ((payload, rows),) = recorder.entries
    sent = wire.decode_record(payload)
    expected = PredictionRecord.of(
        request_id="same-bytes",
        received=received,
        answered=sent.answered_ns,  # the clock's reading in `record`
        route="/predict",
        protocol="native",
        encoding="json",
        caller="a",
        case_ref="urn:case:42",
        model_version="ab" * 32,
        service_version=package_version(),
        scorer=sent.scorer,
        threshold=values["threshold"],
        confidence=values["confidence"],
        scores=values["rows"],
        probabilities=values["probabilities"],
        classes=values["malignant"],
        sets=values["sets"],
        explanation=values.get("explanation"),
        latency_s=(sent.answered_ns - received) / 1e9,
    )
    assert payload == record_bytes(expected)
    assert rows == expected.n_rows
