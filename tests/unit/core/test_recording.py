"""The request's side of the record: who called, as the key guard named it."""

import pytest
from starlette.requests import Request

from app.core.recording import caller_name


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, None),  # a service without keys: the guard names nobody
        ({"recorder": object()}, None),  # the lifespan's state, no caller
        ({"caller": "clinic-a"}, "clinic-a"),
    ],
)
def test_caller_name_is_what_the_key_guard_set(state: dict[str, object], expected: str) -> None:
    request = Request({"type": "http", "state": dict(state)})
    assert caller_name(request) == expected


def test_a_request_without_state_has_no_caller() -> None:
    assert caller_name(Request({"type": "http"})) is None
