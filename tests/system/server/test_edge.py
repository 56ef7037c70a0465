"""The HTTP edge against a live `python -m app`: hostile requests on raw sockets, one table.

Each case sends bytes a hostile or broken client might (oversized or too many headers, a 100 KB
URL, malformed request lines and headers, requests that never finish) and asserts the answer:
its status, the JSON error shape with its `type` and `loc` (the Open Inference Protocol's
`{"error": ...}` on /v2 paths), `Connection: close`, an X-Request-ID, that no byte of the input
is echoed, and that the server closed the connection. After each case a normal
request must still be answered. The server runs with short deadlines (1 s for headers, 2 s for
the whole request) and the default size limits.
"""

import re
import socket
import time
from collections.abc import Iterator
from typing import Final

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LiveServer, start_server
from tests.system.server.edge_client import Answer, exchange
from tests.system.v2 import v2_protocol

HEADER_TIMEOUT: Final = 1.0
BODY_TIMEOUT: Final = 2.0
LIMIT: Final = 16 * 1024  # MAX_HEADER_BYTES' default
MARKER: Final = b"hostile-marker"  # in every hostile input; never in an answer
MARGIN: Final = 3.0  # seconds past a deadline a loaded machine may take

GET: Final = b"GET /health HTTP/1.1\r\nHost: test\r\n"
POST: Final = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
BODY: Final = httpx.Request("POST", "/", json=BENIGN).content
V2_GET: Final = b"GET /v2/models/malignancy-predictor HTTP/1.1\r\nHost: test\r\n"
V2_POST: Final = (
    b"POST /v2/models/malignancy-predictor/infer HTTP/1.1\r\nHost: test\r\n"
    b"Content-Type: application/json\r\n"
)
NEW_ID: Final = re.compile(r"[0-9a-f]{32}")  # the service's own request ids


def sized_head(total: int, start: bytes = GET) -> bytes:
    """A GET /health whose head (request line, headers, blank line) is exactly `total` bytes."""
    start += b"X-Pad: "
    pad = total - len(start) - len(b"\r\n\r\n")
    return start + (MARKER * (pad // len(MARKER) + 1))[:pad] + b"\r\n\r\n"


def headers(count: int, size: int = 8) -> bytes:
    """`count` header fields besides Host, each value `size` bytes."""
    value = (MARKER * (size // len(MARKER) + 1))[:size]
    return b"".join(b"X-F%d: %s\r\n" % (i, value) for i in range(count))


def chunked(*pieces: bytes) -> bytes:
    return POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(pieces)


# id: (what is sent, status, error type, loc)
HOSTILE: Final[dict[str, tuple[tuple[bytes, ...], int, str, list[str]]]] = {
    "head one byte over the limit": ((sized_head(LIMIT + 1),), 431, "header_too_large", ["header"]),
    "one 20 KB header": (
        (GET + b"X: " + MARKER * 1500 + b"\r\n\r\n",),
        431,
        "header_too_large",
        ["header"],
    ),
    "one 32 MiB header": (
        (GET + b"X: " + MARKER * (2_400_000) + b"\r\n\r\n",),
        431,
        "header_too_large",
        ["header"],
    ),
    "32 MiB header never ended": (
        (GET + b"X: " + MARKER * 2_400_000,),
        431,
        "header_too_large",
        ["header"],
    ),
    "90 headers of 200 bytes": (
        (GET + headers(90, 200) + b"\r\n",),
        431,
        "header_too_large",
        ["header"],
    ),
    "101 header fields": ((GET + headers(100) + b"\r\n",), 431, "too_many_headers", ["header"]),
    "10,000 header fields": (
        (GET + headers(10_000) + b"\r\n",),
        431,
        "too_many_headers",
        ["header"],
    ),
    "head over the limit sent in 1 KiB pieces": (
        tuple(sized_head(LIMIT + 500)[i : i + 1024] for i in range(0, LIMIT + 500, 1024)),
        431,
        "header_too_large",
        ["header"],
    ),
    "100 KB URL": (
        (b"GET /" + MARKER * 7000 + b" HTTP/1.1\r\nHost: test\r\n\r\n",),
        414,
        "url_too_long",
        ["url"],
    ),
    "100 KB query string": (
        (b"GET /health?q=" + MARKER * 7000 + b" HTTP/1.1\r\n\r\n",),
        414,
        "url_too_long",
        ["url"],
    ),
    "URL never ended": ((b"GET /" + MARKER * 2000,), 414, "url_too_long", ["url"]),
    "control byte in method": (
        (b"G\x01T /health HTTP/1.1\r\n\r\n",),
        400,
        "invalid_method",
        ["method"],
    ),
    "lower-case method": (
        (b"get /health HTTP/1.1\r\nHost: test\r\n\r\n",),
        400,
        "invalid_method",
        ["method"],
    ),
    "unknown method": ((b"HOSTILE /health HTTP/1.1\r\n\r\n",), 400, "invalid_method", ["method"]),
    "NUL in the URL": (
        (b"GET /a\x00b HTTP/1.1\r\nHost: test\r\n\r\n",),
        400,
        "invalid_url",
        ["url"],
    ),
    "tab in the URL": ((b"GET /a\tb HTTP/1.1\r\nHost: test\r\n\r\n",), 400, "invalid_url", ["url"]),
    "non-ASCII URL": (
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n",),
        400,
        "invalid_url",
        ["url"],
    ),
    "space in the URL": (
        (b"GET /a b HTTP/1.1\r\nHost: test\r\n\r\n",),
        400,
        "invalid_request_line",
        ["request_line"],
    ),
    "bad minor version": (
        (b"GET /health HTTP/1.x\r\n\r\n",),
        400,
        "invalid_request_line",
        ["request_line"],
    ),
    "bare LF line ends": (
        (b"GET /health HTTP/1.1\nHost: test\n\n",),
        400,
        "invalid_request_line",
        ["request_line"],
    ),
    "header without a colon": (
        (GET + b"X-hostile-marker\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "space in a header name": (
        (GET + b"Bad Name: hostile-marker\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "space before the colon": (
        (GET + b"X-Name : hostile-marker\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "empty header name": ((GET + b": hostile-marker\r\n\r\n",), 400, "invalid_header", ["header"]),
    "control byte in a header value": (
        (GET + b"X: hostile\x01marker\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "obsolete line folding": (
        (GET + b"X: a\r\n hostile-marker\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "Content-Length with Transfer-Encoding": (
        (POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "two Content-Lengths": (
        (POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",),
        400,
        "invalid_header",
        ["header"],
    ),
    "negative Content-Length": (
        (POST + b"Content-Length: -3\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "Content-Length overflow": (
        (POST + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "Transfer-Encoding gzip": (
        (POST + b"Transfer-Encoding: gzip\r\n\r\n",),
        400,
        "invalid_header",
        ["header"],
    ),
    "bad chunk size": ((chunked(b"zz\r\n"),), 400, "invalid_body", ["body"]),
    "bad chunk extension": (
        (chunked(b"3;\x01\r\nabc\r\n0\r\n\r\n"),),
        400,
        "invalid_body",
        ["body"],
    ),
    "headers never finished": (
        (GET + b"X-Wait: hostile-marker\r\n",),
        408,
        "header_timeout",
        ["header"],
    ),
    "request line never finished": ((b"GET /health HTT",), 408, "header_timeout", ["header"]),
    "headers trickled past the deadline": (
        tuple(bytes([b]) for b in GET + b"X: hostile-marker\r\n\r\n"),
        408,
        "header_timeout",
        ["header"],
    ),
    "body shorter than Content-Length": (
        (POST + b"Content-Length: %d\r\n\r\n" % len(BODY), BODY[:-5]),
        408,
        "body_timeout",
        ["body"],
    ),
    "chunked body never finished": ((chunked(b'5\r\n{"hos'),), 408, "body_timeout", ["body"]),
}
# The trickle sends one byte every PAUSE seconds: far longer in all than the header deadline.
PAUSE: Final = 0.05


@pytest.fixture(scope="module")
def edge_server() -> Iterator[LiveServer]:
    env = {"HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT), "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}
    with start_server(env) as server:
        yield server


def assert_still_serving(server: LiveServer) -> None:
    answer = httpx.post(f"{server.url}/predict", json=BENIGN, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["class"] == "benign"


def assert_refused(answer: Answer, status: int, kind: str, loc: list[str]) -> None:
    assert answer.status == status, answer.raw[:300]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert NEW_ID.fullmatch(answer.headers["x-request-id"])
    body = answer.json()
    assert [(item["type"], item["loc"]) for item in body["detail"]] == [(kind, loc)], body
    assert body["message"].startswith(".".join(loc) + ": ")
    assert MARKER not in answer.raw  # nothing echoed
    assert b"hostile" not in answer.raw


@pytest.mark.parametrize(("sent", "status", "kind", "loc"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_request_is_refused_in_the_json_shape(
    edge_server: LiveServer, sent: tuple[bytes, ...], status: int, kind: str, loc: list[str]
) -> None:
    # A trickle one byte at a time; a head then its body 0.3 s later; else at once.
    pause = PAUSE if len(sent) > 20 else 0.3 if len(sent) == 2 else 0.0
    answer = exchange(edge_server.port, *sent, pause=pause)
    assert_refused(answer, status, kind, loc)
    if status == 408:
        deadline = HEADER_TIMEOUT if kind == "header_timeout" else BODY_TIMEOUT
        assert deadline - 0.1 <= answer.elapsed < deadline + MARGIN
    else:
        assert answer.elapsed < MARGIN  # answered at once, not at a deadline
    assert_still_serving(edge_server)


# Just within each limit: served as usual.
CLOSE: Final = b"Connection: close\r\n"
WITHIN: Final[dict[str, tuple[bytes, int]]] = {
    "head of exactly the limit": (sized_head(LIMIT, GET + CLOSE), 200),
    "100 header fields": (GET + CLOSE + headers(98) + b"\r\n", 200),
    "long URL within the limit": (
        b"GET /" + b"a" * (LIMIT - 100) + b" HTTP/1.1\r\nHost: test\r\n" + CLOSE + b"\r\n",
        404,
    ),
}


@pytest.mark.parametrize(("sent", "status"), WITHIN.values(), ids=WITHIN.keys())
def test_request_within_the_limits_is_served(
    edge_server: LiveServer, sent: bytes, status: int
) -> None:
    answer = exchange(edge_server.port, sent)
    assert answer.status == status, answer.raw[:300]
    assert answer.headers["content-type"] == "application/json"


def test_body_sent_after_the_headers_in_pieces_is_served(edge_server: LiveServer) -> None:
    head = POST + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
    answer = exchange(edge_server.port, head, BODY[:10], BODY[10:], pause=0.2)
    assert answer.status == 200, answer.raw
    assert answer.json()["class"] == "benign"


def test_connection_that_sends_nothing_is_closed_without_an_answer(
    edge_server: LiveServer,
) -> None:
    answer = exchange(edge_server.port)
    assert answer.raw == b""
    assert HEADER_TIMEOUT - 0.1 <= answer.elapsed < HEADER_TIMEOUT + MARGIN


def test_keep_alive_connection_gets_a_new_header_deadline_per_request(
    edge_server: LiveServer,
) -> None:
    """Three requests 0.6 s apart on one connection: 1.2 s in all, past the 1 s header
    deadline, yet each request's headers arrived in time."""
    request = GET + b"\r\n"
    answer = exchange(
        edge_server.port, request, request, GET + b"Connection: close\r\n\r\n", pause=0.6
    )
    assert answer.raw.count(b"HTTP/1.1 200 OK") == 3, answer.raw


def test_pipelined_requests_are_answered_in_order(edge_server: LiveServer) -> None:
    two = GET + b"\r\n" + GET + b"Connection: close\r\n\r\n"
    answer = exchange(edge_server.port, two)
    assert answer.raw.count(b"HTTP/1.1 200 OK") == 2, answer.raw


def test_oversized_head_after_a_pipelined_request_is_refused_after_its_answer(
    edge_server: LiveServer,
) -> None:
    """The first request's answer comes whole, then the refusal of the second: never ahead."""
    answer = exchange(edge_server.port, GET + b"\r\n" + sized_head(LIMIT * 2))
    assert answer.status == 200, answer.raw[:300]
    assert answer.json()["status"] == "ok"
    rest = answer.raw[answer.raw.index(answer.body) + len(answer.body) :]
    assert rest.startswith(b"HTTP/1.1 431 "), rest[:300]
    assert_still_serving(edge_server)


def test_refusals_are_logged_without_input(edge_server: LiveServer) -> None:
    answer = exchange(edge_server.port, sized_head(LIMIT + 1))
    log = edge_server.stderr()
    assert f"app.edge: 431 header_too_large request_id={answer.headers['x-request-id']}" in log
    assert "hostile" not in log


# Refusals of requests to /v2 paths: (what is sent, status, the message's start).
V2_HOSTILE: Final[dict[str, tuple[tuple[bytes, ...], int, str]]] = {
    "head over the limit": ((sized_head(LIMIT + 1, V2_GET),), 431, "header: "),
    "101 header fields": ((V2_GET + headers(100) + b"\r\n",), 431, "header: "),
    "100 KB URL": (
        (b"GET /v2/models/" + MARKER * 7000 + b" HTTP/1.1\r\n\r\n",),
        414,
        "url: ",
    ),
    "header without a colon": ((V2_GET + b"X-hostile-marker\r\n\r\n",), 400, "header: "),
    "headers never finished": ((V2_GET + b"X-Wait: hostile-marker\r\n",), 408, "header: "),
    "body shorter than Content-Length": (
        (V2_POST + b"Content-Length: 100\r\n\r\n", b'{"inputs": []'),
        408,
        "body: ",
    ),
    "query string, then a bad header": (
        (b"GET /v2?x=1 HTTP/1.1\r\nBad Name: hostile-marker\r\n\r\n",),
        400,
        "header: ",
    ),
}


@pytest.mark.parametrize(("sent", "status", "start"), V2_HOSTILE.values(), ids=V2_HOSTILE.keys())
def test_hostile_request_to_v2_is_refused_in_the_protocols_shape(
    edge_server: LiveServer, sent: tuple[bytes, ...], status: int, start: str
) -> None:
    answer = exchange(edge_server.port, *sent, pause=0.3 if len(sent) == 2 else 0.0)
    assert answer.status == status, answer.raw[:300]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert NEW_ID.fullmatch(answer.headers["x-request-id"])
    body = answer.json()
    v2_protocol.validate("error", body)
    assert body["error"].startswith(start), body
    assert b"hostile" not in answer.raw
    assert_still_serving(edge_server)


@pytest.mark.parametrize(
    ("head", "sane"),
    [(POST, True), (V2_POST, True), (POST, False)],
    ids=["native path", "v2 path", "insane id replaced"],
)
def test_refusal_after_the_headers_keeps_the_clients_request_id(
    edge_server: LiveServer, head: bytes, sane: bool
) -> None:
    given = "client-id-42" if sane else "two words"
    sent = head + f"X-Request-ID: {given}\r\nContent-Length: 100\r\n\r\n".encode()
    answer = exchange(edge_server.port, sent, b"{", pause=0.3)
    assert answer.status == 408, answer.raw[:300]
    request_id = answer.headers["x-request-id"]
    assert request_id == given if sane else NEW_ID.fullmatch(request_id)
    assert f"app.edge: 408 body_timeout request_id={request_id}" in edge_server.stderr()


@pytest.fixture(scope="module")
def capped_server() -> Iterator[LiveServer]:
    with start_server({"MAX_CONNECTIONS": "3", "HEADER_TIMEOUT_SECONDS": "5"}) as server:
        yield server


def test_connection_over_the_cap_gets_503_with_retry_after(capped_server: LiveServer) -> None:
    held = [socket.create_connection(("127.0.0.1", capped_server.port)) for _ in range(3)]
    try:
        answer = exchange(capped_server.port, GET + b"\r\n")
        assert_refused(answer, 503, "too_many_connections", ["server"])
        assert answer.headers["retry-after"] == "1"
        assert answer.elapsed < MARGIN
    finally:
        for sock in held:
            sock.close()
    # Once they are closed, a new connection is served.
    for _ in range(50):
        try:
            if httpx.get(f"{capped_server.url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the server never served again after the held connections closed")
