"""What was sent, in process: the outcome the edge notes, the error types counted, the tally."""

import pytest

from app.observability import prometheus as telemetry
from app.observability.answered import client_left, sent_status
from app.server.edge_answers import path_of


def test_an_untouched_request_counts_the_status_the_app_sent() -> None:
    assert sent_status({"state": {}}, 201) == 201
    assert sent_status({}, 404) == 404  # no state at all (a server without one)


def test_a_client_that_left_is_499_whatever_the_app_tried() -> None:
    scope: dict[str, object] = {"state": {}}
    client_left(scope)
    assert sent_status(scope, 422) == telemetry.CLIENT_CLOSED
    assert sent_status(scope, 200) == telemetry.CLIENT_CLOSED


def test_an_answer_of_the_edge_is_not_the_apps_to_count_even_after_the_client_leaves() -> None:
    from app.observability.answered import EDGE, OUTCOME

    scope: dict[str, object] = {"state": {OUTCOME: EDGE}}
    client_left(scope)  # the edge closes the connection after its answer
    assert sent_status(scope, 500) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "bad_request"),
        (404, "not_found"),
        (415, "unsupported_media_type"),
        (500, "internal_error"),
        (499, "client_closed_request"),
        (599, "status_599"),
    ],
)
def test_an_error_answer_without_a_type_is_counted_under_its_status(
    status: int, expected: str
) -> None:
    assert telemetry.error_kind(status) == expected


def test_a_noted_type_wins_but_not_over_a_client_that_left() -> None:
    telemetry.note_error("json_invalid")
    try:
        assert telemetry.error_kind(422) == "json_invalid"
        assert telemetry.error_kind(499) == "client_closed_request"
    finally:
        telemetry._error_kind.set(None)


def test_the_tally_counts_an_error_answer_under_its_status_and_type() -> None:
    tally = telemetry.Tally()
    tally._dirty = lambda: None  # type: ignore[method-assign]  # keep the counts to look at
    tally.started()
    tally.finished("/predict", "POST", 200, 0.001)
    tally.started()
    tally.finished("/v2/models/{model_name}/infer", "POST", 400, 0.001)
    assert tally.errors == {(400, "bad_request"): 1}
    assert tally.requests[("/predict", "POST", 200)] == 1
    assert tally.in_flight == 0


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (None, "-"),
        (b"", "-"),
        (b"/predict?api_key=secret", "/predict"),
        (b"/a\r\nINFO forged", "/a\\r\\nINFO forged"),
        (b"/caf\xc3\xa9", r"/caf\xc3\xa9"),
    ],
)
def test_the_edge_logs_a_path_never_a_query_or_a_line_break(
    target: bytes | None, shown: str
) -> None:
    assert path_of(target) == shown
