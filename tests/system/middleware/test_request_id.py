"""X-Request-ID on every answer of a real server, error answers included, and on its log line."""

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest

from app.core.config import Settings
from app.core.request_id import accepted_or_new
from app.main import create_app
from app.openapi.examples import BENIGN
from model.artifact import DEFAULT_ARTIFACT_PATH
from tests.live_server import LiveServer, start_server

KEY: Final = "request-id-test-key"
LOG_WAIT_SECONDS: Final = 10.0
GENERATED: Final = re.compile(r"[0-9a-f]{32}")
JSON: Final = {"Content-Type": "application/json"}
KEYED: Final = {**JSON, "X-API-Key": KEY}

# (method, path, headers, body, status): every kind of answer the app gives.
ANSWERS: Final[list[tuple[str, str, dict[str, str], Any, int]]] = [
    ("POST", "/predict", KEYED, BENIGN, 200),
    ("POST", "/predict/batch", KEYED, {"instances": [BENIGN]}, 200),
    ("GET", "/health", {}, None, 200),
    ("HEAD", "/health/ready", {}, None, 200),
    ("GET", "/docs", {}, None, 200),
    ("GET", "/", {}, None, 200),
    ("POST", "/predict", JSON, BENIGN, 401),
    ("GET", "/no/such/path", {}, None, 404),
    ("GET", "/predict", KEYED, None, 405),
    ("POST", "/predict", KEYED, {"padding": "x" * 2048}, 413),
    ("POST", "/predict", {"Content-Type": "text/plain", "X-API-Key": KEY}, "5", 415),
    ("POST", "/predict", KEYED, {**BENIGN, "mitoses": 0}, 422),
]
SANE: Final = ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128, "trace:1/2+3=4@x.y_z"]
INSANE: Final = ["", "has space", "a" * 129, 'quo"te', "semi;colon", "tab\there", "caf\u00e9"]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": KEY, "MAX_BODY_BYTES": "1024"}) as live:
        yield live


def ask(
    server: LiveServer, answer: tuple[str, str, dict[str, str], Any, int], **headers: str
) -> httpx.Response:
    method, path, base, body, status = answer
    content = body if isinstance(body, str) else None
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.request(
            method,
            path,
            headers={**base, **headers},
            json=body if content is None and body is not None else None,
            content=content,
        )
    assert response.status_code == status, response.text
    return response


def wait_for_line(server: LiveServer, part: str, end: str) -> None:
    """The access line is written just after the answer is sent: wait for it (bounded)."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while not any(part in line and line.endswith(end) for line in server.stderr().splitlines()):
        assert time.monotonic() < deadline, f"no access line with {part!r} ending {end!r}"
        time.sleep(0.02)


@pytest.mark.parametrize("answer", ANSWERS, ids=[f"{a[0]} {a[1]} {a[4]}" for a in ANSWERS])
def test_every_answer_carries_a_generated_id(server: LiveServer, answer: Any) -> None:
    first = ask(server, answer).headers.get_list("x-request-id")
    second = ask(server, answer).headers.get_list("x-request-id")
    assert len(first) == len(second) == 1
    assert GENERATED.fullmatch(first[0]), first
    assert first != second


@pytest.mark.parametrize("answer", ANSWERS, ids=[f"{a[0]} {a[1]} {a[4]}" for a in ANSWERS])
@pytest.mark.parametrize("given", SANE)
def test_a_sane_client_id_is_kept_and_logged(server: LiveServer, answer: Any, given: str) -> None:
    response = ask(server, answer, **{"X-Request-ID": given})
    assert response.headers.get_list("x-request-id") == [given]
    method, path = answer[0], answer[1]
    wait_for_line(server, f"app.access: {method} {path} {answer[4]} ", f" request_id={given}")


@pytest.mark.parametrize("given", INSANE)
def test_an_insane_client_id_is_replaced(server: LiveServer, given: str) -> None:
    raw = given.encode("utf-8")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/health", headers=[(b"X-Request-ID", raw)])
    assert response.status_code == 200
    kept = response.headers["x-request-id"]
    assert GENERATED.fullmatch(kept), kept
    wait_for_line(server, "app.access: GET /health 200 ", f" request_id={kept}")


@pytest.mark.parametrize(
    ("given", "kept"),
    [(s.encode(), True) for s in SANE] + [(s.encode(), False) for s in INSANE] + [(None, False)],
)
def test_accepted_or_new(given: bytes | None, kept: bool) -> None:
    chosen = accepted_or_new(given)
    if kept:
        assert given is not None
        assert chosen == given.decode()
    else:
        assert GENERATED.fullmatch(chosen)


def test_an_internal_error_carries_the_id_too() -> None:
    # The real app with one route that fails: a 500 is sent outside every middleware.
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH))

    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/broken", broken, methods=["GET"])

    async def ask_twice() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            given = await client.get("/broken", headers={"X-Request-ID": "trace-500"})
            return given, await client.get("/broken")

    given, generated = asyncio.run(ask_twice())
    assert given.status_code == generated.status_code == 500
    assert given.json()["detail"][0]["type"] == "internal_error"
    assert given.headers.get_list("x-request-id") == ["trace-500"]
    assert GENERATED.fullmatch(generated.headers["x-request-id"])
