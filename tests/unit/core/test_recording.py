"""The request's side of the record: who called, as the key guard named it, and when."""

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from app.core.recording import caller_name, record
from app.core.request_id import set_request_id
from app.record import wire
from app.record.chain import record_bytes


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
        self.entries: list[Any] = []

    async def commit(self, entry: Any) -> None:
        self.entries.append(entry)


def test_a_clock_stepped_back_still_makes_a_record_the_writer_takes() -> None:
    recorder = Committed()
    model = SimpleNamespace(artifact=SimpleNamespace(content_sha256="ab" * 32))
    app = SimpleNamespace(state=SimpleNamespace(recorder=recorder, model=model))
    request = Request({"type": "http", "app": app, "headers": []})
    set_request_id("stepped-back", received=time.time_ns() + 60 * 10**9)  # the clock then fell

    asyncio.run(
        record(
            request,
            route="/predict",
            protocol="native",
            encoding="json",
            scorer="single",
            rows=[[5, 1, 1, 1, 2, 1, 3, 1, 1]],
            probabilities=[0.1],
            malignant=[False],
            sets=[1],
            threshold=0.5,
            confidence=0.95,
        )
    )
    (entry,) = recorder.entries
    checked = wire.decode_record(record_bytes(entry))  # the writer's check: no RecordError
    assert checked.received_ns == checked.answered_ns
    assert checked.latency_s == 0.0
