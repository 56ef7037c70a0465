"""JSON bodies in UTF-16 or UTF-32 are refused on every native route, as V2 refuses them: what a
gateway or a log reads as UTF-8 must be what the service scores (RFC 8259 section 8.1)."""

import json
from collections.abc import Iterator

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LiveServer, start_server

BODIES = {
    "/predict": BENIGN,
    "/explain": BENIGN,
    "/predict/batch": {"instances": [BENIGN]},
}
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with start_server() as server:
        yield server


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("path", list(BODIES))
def test_a_body_not_in_utf8_is_refused(live: LiveServer, path: str, encoding: str) -> None:
    body = json.dumps(BODIES[path]).encode(encoding)
    answer = httpx.post(
        f"{live.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("path", list(BODIES))
def test_the_same_body_in_utf8_is_answered(live: LiveServer, path: str) -> None:
    body = json.dumps(BODIES[path]).encode("utf-8")
    answer = httpx.post(
        f"{live.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
