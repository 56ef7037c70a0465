"""LOG_FORMAT=json on a real server: every line it writes is one JSON object with the promised
fields, the access lines carry the request's id, route and timing, and no body or query string
is ever logged."""

import json
import re
import time
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import pytest

from app.observability.logs import rfc3339_utc
from app.openapi.examples import BENIGN
from tests.live_server import start_server

RFC3339_UTC: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
QUERY_MARKER: Final = "query-marker-5e1f"
QUERY_NUMBER: Final = "0.123456789"  # a threshold the query string carries
BODY_MARKER: Final = "body-marker-77c2"
WAIT_SECONDS: Final = 10.0


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (1764621704.1239, "2025-12-01T20:41:44.123Z")],
)
def test_times_are_rfc3339_utc(timestamp: float, text: str) -> None:
    assert rfc3339_utc(timestamp) == text


def access_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if '"logger": "app.access"' in line]


def test_json_lines_with_every_field_and_no_body_or_query() -> None:
    before = datetime.now(UTC)
    with start_server({"LOG_FORMAT": "json"}) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ok = client.post("/predict", json=BENIGN)
            metrics = client.get("/metrics", params={"threshold": QUERY_NUMBER})
            bad = client.post("/predict", json={**BENIGN, BODY_MARKER: 1})
            unknown = client.get(f"/no/such/{QUERY_MARKER}", headers={"X-Request-ID": "trace-7"})
        assert (ok.status_code, bad.status_code, unknown.status_code) == (200, 422, 404)
        assert metrics.status_code == 200
        deadline = time.monotonic() + WAIT_SECONDS
        while len(access_lines(server.stderr())) < 5:  # /health from start_server, and ours
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.05)
        stderr = server.stderr()
    after = datetime.now(UTC)

    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines), "uvicorn's own lines too"
    for line in lines:
        assert {"time", "level", "logger", "message", "pid", "request_id"} <= set(line), line
        assert RFC3339_UTC.fullmatch(line["time"]), line
        moment = datetime.fromisoformat(line["time"])
        assert before.replace(microsecond=0) <= moment <= after, line
        assert line["pid"] == server.process.pid
    assert BODY_MARKER not in stderr
    assert QUERY_MARKER not in stderr.replace("/no/such/" + QUERY_MARKER, "")
    assert QUERY_NUMBER not in stderr

    access = {line["request_id"]: line for line in access_lines(stderr)}
    answers = [(ok, "/predict"), (bad, "/predict"), (unknown, "unmatched"), (metrics, "/metrics")]
    for response, route in answers:
        line = access[response.headers["x-request-id"]]
        assert line["level"] == "INFO"
        assert line["method"] == response.request.method
        assert line["route"] == route
        assert line["status"] == response.status_code
        assert isinstance(line["duration_ms"], float)
        assert 0 < line["duration_ms"] < WAIT_SECONDS * 1000
        host, port = line["client"].rsplit(":", 1)
        assert host == "127.0.0.1"
        assert port.isdigit()
    assert access["trace-7"]["message"].startswith(f"GET /no/such/{QUERY_MARKER} 404 ")
    assert access[metrics.headers["x-request-id"]]["message"].startswith("GET /metrics 200 ")
