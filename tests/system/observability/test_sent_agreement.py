"""The access log and the metrics count what each client really got, and agree on every case.

Each case is driven on a raw connection to a live server; what the client received (or 499 when
it left before any answer) must be, exactly once, the status of the new access-log line, of
the new `predictor_http_requests_total` count and, for an error, of the new
`predictor_errors_total` count, under the error's type when its body names one. The cases: app
answers (200, a native 422, a V2 400, 404, 405), the edge's own refusals (400, 408 before and
during the app's request, 414, 431, 503), and clients that leave part-way on native and V2
routes (nginx's 499, where the app would have logged 422 or 500).
"""

import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LOOPBACK, LiveServer, start_server
from tests.system.observability.observe import (
    access_statuses,
    by_label,
    raw_exchange,
    scrape,
    status_of,
    wait_for,
    wait_for_metrics,
)

HEADER_TIMEOUT: Final = 1
BODY_TIMEOUT: Final = 2
MAX_CONNECTIONS: Final = 4
INFER: Final = "/v2/models/malignancy-predictor/infer"
SETTLE_SECONDS: Final = 0.4  # after the expected counts appear, for any that should not
CLIENT_LEFT: Final = 499


def request(method: str, path: str, body: bytes = b"", *headers: str) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close", *headers]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def answered(data: bytes, wait: float = 5.0) -> Callable[[int], bytes]:
    return lambda port: raw_exchange(port, data, wait)


def left_part_way(data: bytes) -> Callable[[int], bytes]:
    """Send `data` (a request cut short), wait until the app is on it, and leave."""

    def leave(port: int) -> bytes:
        with socket.create_connection((LOOPBACK, port)) as sock:
            sock.sendall(data)
            time.sleep(0.3)
        return b""

    return leave


def too_many_connections(port: int) -> bytes:
    idle = [socket.create_connection((LOOPBACK, port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        return raw_exchange(port, request("GET", "/health"))
    finally:
        for sock in idle:
            sock.close()


def body_cut_short(path: str) -> bytes:
    head = request("POST", path, b"x" * 100)
    return head[: head.index(b"\r\n\r\n") + 4] + b"{"


PREDICT: Final = json.dumps(BENIGN).encode()
CASES: Final = {
    "200": answered(request("POST", "/predict", PREDICT)),
    "native-422": answered(request("POST", "/predict", b'{"clump_thickness": 99}')),
    "v2-400": answered(request("POST", INFER, b'{"inputs": []}')),
    "v2-404": answered(request("POST", "/v2/models/other/infer", b'{"inputs": []}')),
    "404": answered(request("GET", "/no/such/path")),
    "405": answered(request("DELETE", "/predict")),
    "edge-400-request-line": answered(b"GARBAGE\r\n\r\n"),
    "edge-400-chunk-in-app": answered(
        request("POST", "/predict", b"", "Transfer-Encoding: chunked")[:-2]
        + b"Content-Type: application/json\r\n\r\nzz\r\n"
    ),
    "edge-408-head": answered(b"GET /health HTTP/1.1\r\nHost: test\r\n", HEADER_TIMEOUT + 5),
    "edge-408-body-in-app": answered(body_cut_short("/predict"), BODY_TIMEOUT + 5),
    "edge-408-body-in-app-v2": answered(body_cut_short(INFER), BODY_TIMEOUT + 5),
    "edge-414": answered(request("GET", "/" + "a" * 17_000)),
    "edge-431": answered(request("GET", "/health", b"", "X-Big: " + "b" * 17_000)),
    "edge-503": too_many_connections,
    "left-native": left_part_way(body_cut_short("/predict")),
    "left-v2": left_part_way(body_cut_short(INFER)),
}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    env = {
        "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with start_server(env) as live:
        wait_for_metrics(live)
        yield live


def error_type(raw: bytes) -> str | None:
    """The type of a native error answer's first problem; None for another shape (V2's)."""
    body = raw.partition(b"\r\n\r\n")[2]
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    return detail[0]["type"] if detail else None


@pytest.mark.parametrize("case", list(CASES))
def test_the_log_and_the_metrics_count_what_was_sent(case: str, server: LiveServer) -> None:
    before = scrape(server)
    logged_before = len(server.stderr())
    raw = CASES[case](server.port)
    status = status_of(raw) if raw else CLIENT_LEFT
    assert status is not None, raw[:200]

    def requests_delta() -> Counter[tuple[str, ...]]:
        now = by_label(scrape(server), "predictor_http_requests_total", "status")
        return now - by_label(before, "predictor_http_requests_total", "status")

    wait_for(lambda: sum(requests_delta().values()) >= 1, f"{case} counted")
    time.sleep(SETTLE_SECONDS)
    after = scrape(server)
    assert requests_delta() == Counter({(str(status),): 1})
    log = server.stderr()[logged_before:]
    assert access_statuses(log) == Counter({status: 1}), log
    assert "Traceback" not in log  # a client that leaves is not the service's error
    errors = by_label(after, "predictor_errors_total", "status", "type") - by_label(
        before, "predictor_errors_total", "status", "type"
    )
    if status < 400:
        assert errors == Counter()
        return
    assert sum(errors.values()) == 1
    ((counted_status, counted_type),) = errors
    assert counted_status == str(status)
    expected_type = "client_closed_request" if status == CLIENT_LEFT else error_type(raw)
    if expected_type is not None:
        assert counted_type == expected_type
