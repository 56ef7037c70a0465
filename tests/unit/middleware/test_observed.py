"""app/middleware/observed.py in process: the access line and the request metrics come from the one
status the client was sent, and each of the two can be left out (what scripts/bench measures)."""

import asyncio
import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.middleware.observed import Observed
from app.observability import prometheus as telemetry
from app.observability.answered import EDGE, OUTCOME, client_left


class Answer:
    """An app answering `status`, or failing before it answers; the scope may be marked by the
    edge while the app runs (`mark`)."""

    def __init__(self, status: int | None, mark: Any = None) -> None:
        self.status = status
        self.mark = mark

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.mark is not None:
            self.mark(scope)
        if self.status is None:
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def request(app: Observed) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/x",
        "root_path": "",
        "state": {},
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    asyncio.run(app(scope, receive, send))


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> telemetry.Tally:
    caplog.set_level(logging.INFO, logger="app.access")
    fresh = telemetry.Tally(flush_seconds=3600)  # held until the test reads it
    monkeypatch.setattr(telemetry, "TALLY", fresh)
    return fresh


def counted(tally: telemetry.Tally) -> dict[tuple[str, str, int], int]:
    return dict(tally.requests)


def test_the_line_and_the_count_say_the_status_sent(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    request(Observed(Answer(201)))
    assert " GET /x 201 " in capsys.readouterr().err
    assert counted(tally) == {(telemetry.UNMATCHED, "GET", 201): 1}
    assert tally.in_flight == 0


def test_a_client_that_left_is_499_in_both(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    request(Observed(Answer(422, mark=client_left)))
    assert " GET /x 499 " in capsys.readouterr().err
    assert counted(tally) == {(telemetry.UNMATCHED, "GET", 499): 1}


def test_an_answer_the_edge_wrote_is_in_neither(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    request(Observed(Answer(500, mark=lambda scope: scope["state"].update({OUTCOME: EDGE}))))
    assert capsys.readouterr().err == ""
    assert counted(tally) == {}
    assert tally.in_flight == 0


def test_an_app_that_fails_is_500_in_both(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError):
        request(Observed(Answer(None)))
    assert " GET /x 500 " in capsys.readouterr().err
    assert counted(tally) == {(telemetry.UNMATCHED, "GET", 500): 1}


def test_without_the_access_log_the_request_is_still_counted(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    request(Observed(Answer(200), access_log=False))
    assert capsys.readouterr().err == ""
    assert counted(tally) == {(telemetry.UNMATCHED, "GET", 200): 1}


def test_without_metrics_the_request_is_still_logged(
    tally: telemetry.Tally, capsys: pytest.CaptureFixture[str]
) -> None:
    request(Observed(Answer(200), metrics=False))
    assert " GET /x 200 " in capsys.readouterr().err
    assert counted(tally) == {}
    assert tally.in_flight == 0


def test_below_info_nothing_is_logged(
    tally: telemetry.Tally,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.access")
    request(Observed(Answer(200)))
    assert capsys.readouterr().err == ""
    assert counted(tally) == {(telemetry.UNMATCHED, "GET", 200): 1}
