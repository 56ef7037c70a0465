"""The HTTP edge against a live `python -m app`: pipelining, Expect, transfer codings, Host,
header whitespace, half-closed clients and error shapes, one parametrized table.

Each case sends raw bytes on one connection and asserts every answer that came back, in order:
its status, its error `type` (or, on /v2 paths, the protocol's `{"error": ...}` shape), that
answers to pipelined requests arrive in the order the requests were sent (each request carries
`X-Request-ID: edge-<n>`; an edge refusal, which may not know the id, comes only after them),
that no byte was written beyond whole answers, whether the server closed the connection, and,
after the case, that the service still answers a normal request.

The server runs with short deadlines (1 s for headers, 2 s for a whole request), an API key
and ROOT_PATH=/ml (targets work with and without the prefix, as behind a proxy that strips it
or one that does not).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LiveServer, start_server
from tests.system.server.edge.wire import Conversation, converse, request
from tests.system.v2 import v2_protocol

KEY: Final = "edge-test-key-0123456789"
LIMIT: Final = 16 * 1024  # MAX_HEADER_BYTES' default
HEADER_TIMEOUT: Final = 1.0
BODY_TIMEOUT: Final = 4.0
AT_ONCE: Final = 2.0  # seconds within which an answer not waiting for a deadline must come
MARGIN: Final = 3.0  # seconds past a deadline a loaded machine may take
MODEL: Final = "malignancy-predictor"
BODY: Final = httpx.Request("POST", "/", json=BENIGN).content
AUTH: Final = (f"X-API-Key: {KEY}", "Content-Type: application/json")
V2: Final = "v2"  # in place of an error type: the protocol's {"error": ...} shape
APP: Final = None  # in place of an error type: the app's own answer (a success)


def get(n: int, target: str = "/health", *headers: str) -> bytes:
    return request(n, "GET", target, headers=headers)


def predict(n: int, target: str = "/predict", *headers: str) -> bytes:
    return request(n, "POST", target, BODY, headers=(*AUTH, *headers))


def chunked_predict(n: int, coding: str = "chunked") -> bytes:
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    return request(n, "POST", "/predict", body, headers=(*AUTH, f"Transfer-Encoding: {coding}"))


def padded_get(n: int, size: int) -> bytes:
    """A GET /health whose head is `size` bytes, padded by one header."""
    bare = get(n, "/health", "X-Pad: ")
    return bare[:-4] + b"p" * (size - len(bare)) + b"\r\n\r\n"


def raw_head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Case:
    pieces: tuple[bytes, ...]
    answers: tuple[tuple[int, str | None], ...]  # (status, error type, V2 or APP), in order
    closes: bool = True  # the server ends the connection (else: keep-alive, our timeout)
    pause: float = 0.0
    half_close: bool = False
    at_deadline: float | None = None  # answered at this deadline, not at once
    read_after: float = 0.0  # the client reads nothing before (with a small window)


EXPLAIN_BODY: Final = request(1, "POST", "/explain", BODY, headers=AUTH)
# 301 GETs, 38 KB in all: more than MAX_HEADER_BYTES, each far within it.
SMALL_GETS: Final = b"".join(get(n) for n in range(1, 301)) + get(
    301, "/health", "Connection: close"
)
PREDICT_3: Final = predict(3, "/predict", "Connection: close")
CHUNKED_THEN_BIG: Final = chunked_predict(1) + padded_get(2, 20_000)

CASES: Final[dict[str, Case]] = {
    # -- pipelined refusals come after the earlier answers (item 4) --------------------------
    "bad chunk size behind a GET": Case(
        (
            get(1)
            + request(
                2, "POST", "/predict", b"zz\r\n", headers=(*AUTH, "Transfer-Encoding: chunked")
            ),
        ),
        ((200, APP), (400, "invalid_body")),
    ),
    "bad chunk size behind two predictions": Case(
        (
            predict(1)
            + predict(2)
            + request(
                3, "POST", "/predict", b"5;\x01\r\n", headers=(*AUTH, "Transfer-Encoding: chunked")
            ),
        ),
        ((200, APP), (200, APP), (400, "invalid_body")),
    ),
    "bad chunk behind an explanation (slow)": Case(
        (
            EXPLAIN_BODY
            + request(
                2, "POST", "/predict", b"zz\r\n", headers=(*AUTH, "Transfer-Encoding: chunked")
            ),
        ),
        ((200, APP), (400, "invalid_body")),
    ),
    "body timeout behind a prediction": Case(
        (
            predict(1)
            + request(2, "POST", "/predict", headers=(*AUTH, "Content-Length: 100"))
            + b"{",
        ),
        ((200, APP), (408, "body_timeout")),
        at_deadline=BODY_TIMEOUT,
    ),
    "body held back by the server while answers are unread": Case(
        (get(1, "/openapi.json") + get(2, "/openapi.json") + PREDICT_3[:-10], PREDICT_3[-10:]),
        ((200, APP), (200, APP), (200, APP)),
        pause=0.3,
        read_after=BODY_TIMEOUT + 1,
    ),
    "header timeout behind a prediction": Case(
        (predict(1) + b"GET /health HTTP/1.1\r\nHost: test\r\n",),
        ((200, APP), (408, "header_timeout")),
        at_deadline=HEADER_TIMEOUT,
    ),
    "bad header behind two GETs": Case(
        (get(1) + get(2) + b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n",),
        ((200, APP), (200, APP), (400, "invalid_header")),
    ),
    # -- header limits per request, not per read (item 12) -----------------------------------
    "300 small GETs in one write": Case((SMALL_GETS,), tuple((200, APP) for _ in range(301))),
    "300 small GETs in 1000-byte pieces": Case(
        tuple(SMALL_GETS[i : i + 1000] for i in range(0, len(SMALL_GETS), 1000)),
        tuple((200, APP) for _ in range(301)),
    ),
    "head of exactly the limit behind a GET": Case(
        (get(1) + padded_get(2, LIMIT)[:-4] + b"\r\nConnection: close\r\n\r\n",),
        ((200, APP), (431, "header_too_large")),  # Connection: close takes it past the limit
    ),
    "head of the limit less 19 behind a GET": Case(
        (get(1) + padded_get(2, LIMIT - 19)[:-4] + b"\r\nConnection: close\r\n\r\n",),
        ((200, APP), (200, APP)),
    ),
    "20 KB head behind a prediction": Case(
        (predict(1) + padded_get(2, 20_000),),
        ((200, APP), (431, "header_too_large")),
    ),
    "60 KB head behind a prediction, in one write": Case(
        (predict(1) + padded_get(2, 60_000),),
        ((200, APP), (431, "header_too_large")),
    ),
    "60 KB head behind a chunked prediction": Case(
        (chunked_predict(1) + padded_get(2, 60_000),),
        ((200, APP), (431, "header_too_large")),
    ),
    "20 KB head behind a chunked prediction, split": Case(
        (CHUNKED_THEN_BIG[:-9000], CHUNKED_THEN_BIG[-9000:]),
        ((200, APP), (431, "header_too_large")),
        pause=0.3,
    ),
    "101 fields behind a prediction": Case(
        (predict(1) + get(2, "/health", *(f"X-F{i}: v" for i in range(100))),),
        ((200, APP), (431, "too_many_headers")),
    ),
    # -- Expect: 100-continue answered early (item 6) ----------------------------------------
    "Expect 100 with a body over the limit, next request sent": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                headers=(*AUTH, "Content-Length: 2000000", "Expect: 100-continue"),
            ),
            get(2),
        ),
        ((413, "body_too_large"),),
        pause=0.3,
    ),
    "Expect 100 without the key, next request sent": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                headers=(
                    "Content-Type: application/json",
                    f"Content-Length: {len(BODY)}",
                    "Expect: 100-continue",
                ),
            ),
            get(2),
        ),
        ((401, "missing_api_key"),),
        pause=0.3,
    ),
    "Expect 100 without the key, body sent anyway": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                headers=(
                    "Content-Type: application/json",
                    f"Content-Length: {len(BODY)}",
                    "Expect: 100-CONTINUE",
                ),
            ),
            BODY + get(2),
        ),
        ((401, "missing_api_key"),),
        pause=0.3,
    ),
    "Expect 100 on /v2 infer without the key": Case(
        (
            request(
                1,
                "POST",
                f"/v2/models/{MODEL}/infer",
                headers=(
                    "Content-Type: application/json",
                    "Content-Length: 50",
                    "Expect: 100-continue",
                ),
            ),
            get(2),
        ),
        ((401, V2),),
        pause=0.3,
    ),
    "Expect 100 with a good request is served and kept": Case(
        (predict(1, "/predict", "Expect: 100-continue") + get(2, "/health", "Connection: close"),),
        ((200, APP), (200, APP)),
    ),
    # -- transfer codings (item 7) -----------------------------------------------------------
    "gzip, chunked": Case(
        (chunked_predict(1, "gzip, chunked"),), ((501, "unsupported_transfer_coding"),)
    ),
    "foo, chunked": Case(
        (chunked_predict(1, "foo, chunked"),), ((501, "unsupported_transfer_coding"),)
    ),
    "GZIP , chunked with spaces": Case(
        (chunked_predict(1, "GZIP ,  chunked"),), ((501, "unsupported_transfer_coding"),)
    ),
    "identity, chunked": Case(
        (chunked_predict(1, "identity, chunked"),), ((501, "unsupported_transfer_coding"),)
    ),
    "gzip and chunked as two fields": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                b"0\r\n\r\n",
                headers=(*AUTH, "Transfer-Encoding: gzip", "Transfer-Encoding: chunked"),
            ),
        ),
        ((501, "unsupported_transfer_coding"),),
    ),
    "chunked, gzip": Case((chunked_predict(1, "chunked, gzip"),), ((400, "invalid_header"),)),
    "chunked twice": Case((chunked_predict(1, "chunked, chunked"),), ((400, "invalid_header"),)),
    "gzip, chunked on /v2": Case(
        (
            request(
                1,
                "POST",
                f"/v2/models/{MODEL}/infer",
                b"0\r\n\r\n",
                headers=("Transfer-Encoding: gzip, chunked",),
            ),
        ),
        ((501, V2),),
    ),
    "gzip, chunked behind a GET": Case(
        (get(1) + chunked_predict(2, "gzip, chunked"),),
        ((200, APP), (501, "unsupported_transfer_coding")),
    ),
    "lone chunked is served": Case(
        (chunked_predict(1) + get(2, "/health", "Connection: close"),), ((200, APP), (200, APP))
    ),
    # -- Host (item 15) ----------------------------------------------------------------------
    "HTTP/1.1 without Host": Case((raw_head("GET /health HTTP/1.1"),), ((400, "invalid_host"),)),
    "HTTP/1.1 with two Hosts": Case(
        (raw_head("GET /health HTTP/1.1", "Host: a", "Host: b"),), ((400, "invalid_host"),)
    ),
    "HTTP/1.1 with the same Host twice, cases differing": Case(
        (raw_head("GET /health HTTP/1.1", "Host: a", "HOST: a"),), ((400, "invalid_host"),)
    ),
    "HTTP/1.0 with two Hosts": Case(
        (raw_head("GET /health HTTP/1.0", "Host: a", "Host: b"),), ((400, "invalid_host"),)
    ),
    "HTTP/1.0 without Host is served": Case((raw_head("GET /health HTTP/1.0"),), ((200, APP),)),
    "empty Host is served": Case(
        (raw_head("GET /health HTTP/1.1", "Host:", "Connection: close"),), ((200, APP),)
    ),
    "missing Host behind a GET": Case(
        (get(1) + raw_head("GET /health HTTP/1.1"),), ((200, APP), (400, "invalid_host"))
    ),
    "missing Host on /v2 under the prefix": Case(
        (raw_head("GET /ml/v2/health/live HTTP/1.1"),), ((400, V2),)
    ),
    # -- header whitespace (item 15) ---------------------------------------------------------
    "API key with trailing spaces": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                BODY,
                headers=(
                    f"X-API-Key: {KEY}   ",
                    "Content-Type: application/json",
                    "Connection: close",
                ),
            ),
        ),
        ((200, APP),),
    ),
    "API key with a trailing tab": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                BODY,
                headers=(
                    f"X-API-Key:\t{KEY}\t",
                    "Content-Type: application/json",
                    "Connection: close",
                ),
            ),
        ),
        ((200, APP),),
    ),
    "API key with a character more": Case(
        (
            request(
                1,
                "POST",
                "/predict",
                BODY,
                headers=(
                    f"X-API-Key: {KEY}x",
                    "Content-Type: application/json",
                    "Connection: close",
                ),
            ),
        ),
        ((401, "invalid_api_key"),),
    ),
    # -- the /v2 shape under ROOT_PATH and for absolute-form targets (item 15) ----------------
    "431 on /ml/v2": Case((request(1, "GET", "/ml/v2/models/" + "m" * LIMIT),), ((414, V2),)),
    "bad header on absolute-form /v2": Case(
        (b"GET http://test/v2/health/live HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n",),
        ((400, V2),),
    ),
    "bad header on absolute-form /ml/v2": Case(
        (b"GET https://test:8443/ml/v2 HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n",),
        ((400, V2),),
    ),
    "bad header on /ml/predict keeps the native shape": Case(
        (b"GET /ml/predict HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n",),
        ((400, "invalid_header"),),
    ),
    "bad header on /ml/v2x keeps the native shape": Case(
        (b"GET /ml/v2x HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n",),
        ((400, "invalid_header"),),
    ),
    # -- half-closed clients get their answers (item 15) -------------------------------------
    "half-close after /explain": Case((EXPLAIN_BODY,), ((200, APP),), half_close=True),
    "half-close after /predict": Case((predict(1),), ((200, APP),), half_close=True),
    "half-close after /ml/explain and /predict/batch": Case(
        (
            request(1, "POST", "/ml/explain", BODY, headers=AUTH)
            + request(
                2, "POST", "/predict/batch", b'{"instances": [%s, %s]}' % (BODY, BODY), headers=AUTH
            ),
        ),
        ((200, APP), (200, APP)),
        half_close=True,
    ),
    "half-close after a V2 infer": Case(
        (
            request(
                1,
                "POST",
                f"/v2/models/{MODEL}/infer",
                b'{"inputs":[{"name":"scores","shape":[1,9],"datatype":"INT64","data":[5,1,1,1,2,1,3,1,1]}]}',
                headers=AUTH,
            ),
        ),
        ((200, APP),),
        half_close=True,
    ),
    "half-close part-way through a body": Case(
        (request(1, "POST", "/predict", headers=(*AUTH, "Content-Length: 100")) + b"{",),
        (),
        half_close=True,
    ),
}


@pytest.fixture(scope="module")
def edge_server() -> Iterator[LiveServer]:
    env = {
        "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "API_KEY": KEY,
        "ROOT_PATH": "/ml",
    }
    with start_server(env) as server:
        yield server


def assert_in_order(conversation: Conversation) -> None:
    """Answers name their requests in increasing order; refusals without our id come last."""
    indices = [reply.request_index for reply in conversation.replies]
    ours = [i for i in indices if i is not None]
    assert ours == sorted(ours), indices
    assert len(set(ours)) == len(ours), indices
    if None in indices:
        assert all(i is None for i in indices[indices.index(None) :]), indices


def assert_answer(reply_status: int, expected: int, kind: str | None, body: Any) -> None:
    assert reply_status == expected, body
    if kind == V2:
        v2_protocol.validate("error", body)
    elif kind is not None:
        assert [item["type"] for item in body["detail"]][:1] == [kind], body


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_case(edge_server: LiveServer, case: Case) -> None:
    conversation = converse(
        edge_server.port,
        *case.pieces,
        pause=case.pause,
        half_close=case.half_close,
        read_after=case.read_after,
    )
    replies = conversation.replies
    assert [r.status for r in replies] == [status for status, _ in case.answers], conversation.raw[
        :600
    ]
    for reply, (status, kind) in zip(replies, case.answers, strict=True):
        is_json = reply.headers.get("content-type", "").startswith("application/json")
        assert_answer(reply.status, status, kind, reply.json() if is_json else {})
        if reply.status >= 400 and kind not in (APP,):
            assert reply.headers.get("content-type") == "application/json"
    assert_in_order(conversation)
    assert conversation.rest == b"", conversation.rest[:300]  # nothing but whole answers
    assert conversation.closed == case.closes
    if case.at_deadline is not None:
        assert case.at_deadline - 0.1 <= conversation.elapsed < case.at_deadline + MARGIN
    elif case.closes:
        assert conversation.elapsed < AT_ONCE + case.read_after
    assert_still_serving(edge_server)


def assert_still_serving(server: LiveServer) -> None:
    answer = httpx.post(
        f"{server.url}/predict", json=BENIGN, headers={"X-API-Key": KEY}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["class"] == "benign"


def test_a_refusal_is_logged_once_and_the_earlier_answer_too(edge_server: LiveServer) -> None:
    """The earlier request was scored and answered before the refusal (on the wire), and each
    is logged once. Not in that order: the access line is written once the answer's last
    bytes are sent, and the refusal, due then, may be logged first."""
    sent = predict(7, "/predict") + request(
        8, "POST", "/predict", b"zz\r\n", headers=(*AUTH, "Transfer-Encoding: chunked")
    )
    conversation = converse(edge_server.port, sent)
    assert [r.status for r in conversation.replies] == [200, 400]
    refusal_id = conversation.replies[1].headers["x-request-id"]
    refusal = f"app.edge: 400 invalid_body request_id={refusal_id}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        line in edge_server.stderr() for line in (refusal, "request_id=edge-7")
    ):
        time.sleep(0.05)
    log = edge_server.stderr().splitlines()
    assert sum(refusal in line for line in log) == 1
    (answered,) = [line for line in log if line.endswith("request_id=edge-7")]
    assert "POST /predict 200 " in answered
