"""Every kind of bad input gets a clear 4xx naming the field and the rule, from a real server."""

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.examples import BENIGN
from tests.live_server import LiveServer

MAX_BODY = 1024 * 1024  # the default MAX_BODY_BYTES
MAX_BATCH = 1000  # the default MAX_BATCH_SIZE
JSON = {"content-type": "application/json"}


def body(**changes: Any) -> dict[str, Any]:
    """The benign example with fields replaced; a value of ... removes the field."""
    out: dict[str, Any] = {**BENIGN, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def raw(text: str) -> bytes:
    return text.encode()


def raw_score(token: str, name: str = "mitoses") -> bytes:
    """The benign example with one value replaced by a raw JSON token such as NaN."""
    items = [f'"{k}": {token if k == name else json.dumps(v)}' for k, v in BENIGN.items()]
    if name not in BENIGN:
        items.append(f'"{name}": {token}')
    return ("{" + ", ".join(items) + "}").encode()


@dataclass
class Case:
    id: str
    expected_status: int
    names: list[str]  # each must appear in the one-line message (field and rule)
    path: str = "/predict"
    method: str = "POST"
    json_body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    params: dict[str, str] | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        content = (
            json.dumps(self.json_body).encode() if self.json_body is not None else self.content
        )
        return client.request(
            self.method,
            self.path,
            content=content,
            headers=self.headers,
            params=self.params,
        )


GE1 = "greater than or equal to 1"
LE10 = "less than or equal to 10"
INTEGER = "valid integer"
FINITE = "finite number"

CASES = [
    # -- fields --------------------------------------------------------------------------
    Case("missing field", 422, ["body.mitoses", "Field required"], json_body=body(mitoses=...)),
    Case(
        "unknown field",
        422,
        ["body.bare_nucleoli", "Extra inputs are not permitted"],
        json_body=body(bare_nucleoli=1),
    ),
    Case(
        "misspelled field",
        422,
        ["body.bare_nuclei", "Field required", "body.bare_nucleoli", "Extra inputs"],
        json_body=body(bare_nuclei=..., bare_nucleoli=1),
    ),
    # -- values ----------------------------------------------------------------------------
    Case("value 0", 422, ["body.clump_thickness", GE1], json_body=body(clump_thickness=0)),
    Case("value 11", 422, ["body.mitoses", LE10], json_body=body(mitoses=11)),
    Case("value -1", 422, ["body.bare_nuclei", GE1], json_body=body(bare_nuclei=-1)),
    Case("huge integer", 422, ["body.mitoses", LE10], json_body=body(mitoses=10**40)),
    Case("non-integer 5.5", 422, ["body.mitoses", INTEGER], json_body=body(mitoses=5.5)),
    Case("integral float 11.0", 422, ["body.mitoses", LE10], json_body=body(mitoses=11.0)),
    Case("float 1e300", 422, ["body.mitoses", LE10], json_body=body(mitoses=1e300)),
    Case("numeric string", 422, ["body.mitoses", INTEGER], json_body=body(mitoses="5")),
    Case("null", 422, ["body.mitoses", INTEGER], json_body=body(mitoses=None)),
    Case("boolean", 422, ["body.mitoses", INTEGER], json_body=body(mitoses=True)),
    Case("list value", 422, ["body.mitoses", INTEGER], json_body=body(mitoses=[5])),
    Case("NaN token", 422, ["body.mitoses", INTEGER], content=raw_score("NaN")),
    Case("Infinity token", 422, ["body.mitoses", INTEGER], content=raw_score("Infinity")),
    Case("-Infinity token", 422, ["body.mitoses", INTEGER], content=raw_score("-Infinity")),
    # -- threshold -------------------------------------------------------------------------
    Case("threshold -0.1", 422, ["body.threshold", "greater than or equal to 0"],
         json_body=body(threshold=-0.1)),
    Case("threshold 1.1", 422, ["body.threshold", "less than or equal to 1"],
         json_body=body(threshold=1.1)),
    Case("threshold NaN", 422, ["body.threshold", FINITE], content=raw_score("NaN", "threshold")),
    Case("threshold Infinity", 422, ["body.threshold", FINITE],
         content=raw_score("Infinity", "threshold")),
    Case("threshold string", 422, ["body.threshold", "valid number"],
         json_body=body(threshold="0.5")),
    Case("threshold boolean", 422, ["body.threshold", "valid number"],
         json_body=body(threshold=True)),
    # -- the body as a whole ---------------------------------------------------------------
    Case("empty body", 422, ["body", "JSON request body is required"], content=b""),
    Case("malformed JSON", 422, ["body", "Invalid JSON"], content=raw('{"mitoses": 1,')),
    Case("JSON array", 422, ["body", "JSON object"], json_body=[BENIGN]),
    Case("JSON number", 422, ["body", "JSON object"], content=b"42"),
    Case("JSON string", 422, ["body", "JSON object"], content=b'"hello"'),
    Case("JSON null", 422, ["body", "JSON object"], content=b"null"),
    Case("invalid UTF-8", 422, ["body", "Invalid JSON", "UTF-8"], content=b'{"mitoses": "\xff"}'),
    Case("nested too deep", 422, ["body", "Invalid JSON", "nested"], content=b"[" * 100_000),
    Case("wrong content type", 415, ["Content-Type", "application/json", "text/plain"],
         content=json.dumps(BENIGN).encode(), headers={"content-type": "text/plain"}),
    Case("form content type", 415, ["Content-Type", "application/json"],
         content=b"mitoses=1", headers={"content-type": "application/x-www-form-urlencoded"}),
    Case("no content type", 415, ["Content-Type", "application/json"],
         content=json.dumps(BENIGN).encode(), headers={}),
    Case("body over 1 MiB", 413, ["body", str(MAX_BODY), "MAX_BODY_BYTES"],
         content=b" " * (MAX_BODY + 1)),
    # -- batch -----------------------------------------------------------------------------
    Case("batch over the limit", 422, ["body.instances", str(MAX_BATCH), "MAX_BATCH_SIZE"],
         path="/predict/batch", json_body={"instances": [BENIGN] * (MAX_BATCH + 1)}),
    Case("empty batch", 422, ["body.instances", "at least 1 item"],
         path="/predict/batch", json_body={"instances": []}),
    Case("batch without instances", 422, ["body.instances", "Field required"],
         path="/predict/batch", json_body={"threshold": 0.5}),
    Case("batch item invalid", 422, ["body.instances.1.mitoses", LE10],
         path="/predict/batch", json_body={"instances": [BENIGN, body(mitoses=11)]}),
    Case("batch item not an object", 422, ["body.instances.0", "JSON object"],
         path="/predict/batch", json_body={"instances": [7]}),
    Case("batch unknown field", 422, ["body.instance", "Extra inputs"],
         path="/predict/batch", json_body={"instances": [BENIGN], "instance": BENIGN}),
    Case("batch threshold NaN", 422, ["body.threshold", FINITE], path="/predict/batch",
         content=('{"instances": [' + json.dumps(BENIGN) + '], "threshold": NaN}').encode()),
    Case("batch as array", 422, ["body", "JSON object"], path="/predict/batch",
         json_body=[BENIGN]),
    # -- /metrics ----------------------------------------------------------------------------
    *[
        Case(f"metrics threshold {value}", 422, ["query.threshold", rule], path="/metrics",
             method="GET", headers={}, params={"threshold": value})
        for value, rule in [
            ("-0.1", "greater than or equal to 0"),
            ("1.1", "less than or equal to 1"),
            ("nan", FINITE),
            ("inf", FINITE),
            ("abc", "valid number"),
            ("", "valid number"),
        ]
    ],
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_4xx(client: httpx.Client, case: Case) -> None:
    response = case.send(client)
    assert response.status_code == case.expected_status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"message", "detail"}
    assert "\n" not in answer["message"]
    for name in case.names:
        assert name in answer["message"], f"{name!r} not in {answer['message']!r}"
    for item in answer["detail"]:
        assert set(item) == {"loc", "msg", "type"}


def test_the_server_stays_healthy_after_the_table(client: httpx.Client) -> None:
    for case in CASES:
        case.send(client)
    assert client.get("/health").status_code == 200
    assert client.post("/predict", json=BENIGN).status_code == 200


# -- 413 without reading the body ----------------------------------------------------------
def _raw_exchange(server: LiveServer, head: bytes, body: bytes) -> bytes:
    """Send a request head and part of a body, never finishing it, and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        chunks: list[bytes] = []
        while b"\r\n\r\n" not in b"".join(chunks) or not _complete(b"".join(chunks)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def test_declared_oversize_body_is_refused_before_it_is_sent(server: LiveServer) -> None:
    # Content-Length says 1 GiB but only a few bytes follow: the 413 comes from the header alone.
    head = (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1073741824\r\n\r\n"
    )
    answer = _raw_exchange(server, head, b'{"mitoses": ')
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"MAX_BODY_BYTES" in answer


def test_streamed_oversize_body_is_refused_as_soon_as_it_passes_the_limit(
    server: LiveServer,
) -> None:
    # Chunked, no Content-Length; the terminating chunk is never sent, so the answer proves the
    # server counted the bytes as they came instead of waiting for the whole body.
    head = (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * 65536
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 1)
    )
    answer = _raw_exchange(server, head, body)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"MAX_BODY_BYTES" in answer


def test_streamed_body_within_the_limit_is_served(client: httpx.Client) -> None:
    payload = json.dumps(BENIGN).encode()

    def chunks() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    response = client.post("/predict", content=chunks(), headers=JSON)
    assert response.status_code == 200, response.text


def test_body_of_exactly_the_limit_is_not_refused_for_its_size(client: httpx.Client) -> None:
    padded = json.dumps(BENIGN).encode().ljust(MAX_BODY, b" ")
    response = client.post("/predict", content=padded, headers=JSON)
    assert response.status_code == 200, response.text


def test_errors_are_not_server_errors_in_the_log(server: LiveServer, client: httpx.Client) -> None:
    CASES[0].send(client)
    log = server.stderr()
    assert "Traceback" not in log
    assert " 500 " not in log
