"""Every kind of bad input gets a clear 4xx naming the field and the rule, from a real server."""

import gzip
import json
import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import UVICORN_FACTORY, LiveServer, start_server

MAX_BODY = 1024 * 1024  # the default MAX_BODY_BYTES
MAX_BATCH = 1000  # the default MAX_BATCH_SIZE
JSON = {"content-type": "application/json"}
API_KEY = "hostile-table-key"
LONG_DIGITS = "7" * 5000  # over Python's 4,300-digit int limit
Loc = list[str | int]


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


def pairs(items: list[tuple[str, str]]) -> str:
    """A JSON object written from (raw key text, raw value text) pairs: keys may hold escapes
    and repeat, which json.dumps cannot write."""
    return "{" + ", ".join(f'"{key}": {value}' for key, value in items) + "}"


def benign_pairs(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [(k, json.dumps(v)) for k, v in BENIGN.items()] + list(extra)


def batch_text(instances: list[str], *extra: tuple[str, str]) -> bytes:
    return pairs([("instances", "[" + ", ".join(instances) + "]"), *extra]).encode()


BENIGN_TEXT = json.dumps(BENIGN)
# The example: the last "mitoses" (1) is valid, so only the repetition is wrong.
DUPLICATE_MITOSES = pairs([("mitoses", "99"), *benign_pairs()])
ESCAPED_DUPLICATE = pairs([("mi\\u0074oses", "7"), *benign_pairs()])
FULLY_ESCAPED = "".join(f"\\u{ord(c):04x}" for c in "mitoses")


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
    # (loc, type) of every error item, in order; checked when given
    errors: list[tuple[Loc, str]] | None = None
    keyed: bool = False  # sent to the server that has API_KEY set

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
    # -- confidence: strictly between 0 and 1, a finite number ------------------------------
    *[
        Case(f"{where}confidence {label}", 422, ["body.confidence", rule], path=path,
             content=(prefix + token + "}").encode())
        for where, path, prefix in [
            ("", "/predict", json.dumps(BENIGN)[:-1] + ', "confidence": '),
            ("batch ", "/predict/batch",
             '{"instances": [' + json.dumps(BENIGN) + '], "confidence": '),
        ]
        for label, token, rule in [
            ("0", "0", "greater than 0"),
            ("0.0", "0.0", "greater than 0"),
            ("1", "1", "less than 1"),
            ("1.0", "1.0", "less than 1"),
            ("-0.5", "-0.5", "greater than 0"),
            ("95", "95", "less than 1"),
            ("NaN", "NaN", FINITE),
            ("Infinity", "Infinity", FINITE),
            ("string", '"0.95"', "valid number"),
            ("boolean", "true", "valid number"),
            ("list", "[0.95]", "valid number"),
        ]
    ],
    # -- the body as a whole ---------------------------------------------------------------
    Case("empty body", 422, ["body", "JSON request body is required"], content=b""),
    Case("malformed JSON", 422, ["body", "Invalid JSON"], content=raw('{"mitoses": 1,')),
    Case("JSON array", 422, ["body", "JSON object"], json_body=[BENIGN]),
    Case("JSON number", 422, ["body", "JSON object"], content=b"42"),
    Case("JSON string", 422, ["body", "JSON object"], content=b'"hello"'),
    Case("JSON null", 422, ["body", "JSON object"], content=b"null"),
    Case("invalid UTF-8", 422, ["body", "Invalid JSON", "UTF-8"], content=b'{"mitoses": "\xff"}'),
    # Refused before it is parsed: more arrays than any valid body holds (app/api/body_shape.py).
    Case("nested too deep", 422, ["body", "more JSON objects, arrays"], content=b"[" * 100_000),
    Case("wrong content type", 415, ["Content-Type", "application/json", "text/plain"],
         content=json.dumps(BENIGN).encode(), headers={"content-type": "text/plain"}),
    Case("form content type", 415, ["Content-Type", "application/json"],
         content=b"mitoses=1", headers={"content-type": "application/x-www-form-urlencoded"}),
    Case("no content type", 415, ["Content-Type", "application/json"],
         content=json.dumps(BENIGN).encode(), headers={}),
    Case("body over 1 MiB", 413, ["body", str(MAX_BODY), "MAX_BODY_BYTES"],
         content=b" " * (MAX_BODY + 1)),
    # -- batch -----------------------------------------------------------------------------
    Case("batch over the limit", 422, ["body.instances", f"at most {MAX_BATCH} items"],
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

DUP = "duplicate_key"
EXTRA = "extra_forbidden"
PARSE = "float_parsing"
ENCODING = "unsupported_content_encoding"
CE: Loc = ["header", "Content-Encoding"]
KEY: Loc = ["header", "X-API-Key"]
QT: Loc = ["query", "threshold"]
BATCH = "/predict/batch"
ROWS_999 = [BENIGN_TEXT] * 999
PLAIN = json.dumps(BENIGN).encode()


def metrics_query(query: str) -> str:
    return f"/metrics?{query}"


# The hostile table: what issue 9 found, and what a careful attacker tries next. Each case names
# every error item it must get, (loc, type), and the server must answer normally after each.
HOSTILE = [
    # -- a repeated key, anywhere: one reading of every body --------------------------------
    Case("duplicate key, last value valid", 422, ["body.mitoses", "more than once"],
         content=DUPLICATE_MITOSES.encode(), errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate key, same value twice", 422, ["body.mitoses"],
         content=pairs([("mitoses", "1"), *benign_pairs()]).encode(),
         errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate threshold", 422, ["body.threshold"],
         content=pairs(benign_pairs(("threshold", "0.9"), ("threshold", "0.001"))).encode(),
         errors=[(["body", "threshold"], DUP)]),
    Case("escaped duplicate mi\\u0074oses", 422, ["body.mitoses"],
         content=ESCAPED_DUPLICATE.encode(), errors=[(["body", "mitoses"], DUP)]),
    Case("fully escaped duplicate", 422, ["body.mitoses"],
         content=pairs([(FULLY_ESCAPED, "2"), *benign_pairs()]).encode(),
         errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate key in an otherwise invalid body", 422, ["body.mitoses"],
         content=pairs([("mitoses", "1"), ("mitoses", "0")]).encode(),
         errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate unknown key", 422, ["body.x"],
         content=pairs(benign_pairs(("x", "1"), ("x", "2"))).encode(),
         errors=[(["body", "x"], DUP)]),
    Case("duplicate key nested in an unknown object", 422, ["body.meta.a"],
         content=pairs(benign_pairs(("meta", '{"a": 1, "b": [{"c": 1}], "a": 2}'))).encode(),
         errors=[(["body", "meta", "a"], DUP)]),
    Case("duplicate key, charset=UTF-8 (FastAPI's handler)", 422, ["body.mitoses"],
         content=DUPLICATE_MITOSES.encode(),
         headers={"content-type": "application/json; charset=UTF-8"},
         errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate key, application/problem+json", 422, ["body.mitoses"],
         content=DUPLICATE_MITOSES.encode(), headers={"content-type": "application/problem+json"},
         errors=[(["body", "mitoses"], DUP)]),
    Case("duplicate in batch instance 0", 422, ["body.instances.0.mitoses"], path=BATCH,
         content=batch_text([DUPLICATE_MITOSES, BENIGN_TEXT]),
         errors=[(["body", "instances", 0, "mitoses"], DUP)]),
    Case("duplicate in batch instance 999", 422, ["body.instances.999.mitoses"], path=BATCH,
         content=batch_text([*ROWS_999, ESCAPED_DUPLICATE]),
         errors=[(["body", "instances", 999, "mitoses"], DUP)]),
    Case("duplicate instances key", 422, ["body.instances"], path=BATCH,
         content=pairs([("instances", "[7]"), ("instances", f"[{BENIGN_TEXT}]")]).encode(),
         errors=[(["body", "instances"], DUP)]),
    Case("duplicate batch threshold", 422, ["body.threshold"], path=BATCH,
         content=batch_text([BENIGN_TEXT], ("threshold", "0.9"), ("threshold", "0.1")),
         errors=[(["body", "threshold"], DUP)]),
    # -- query strings: JSON's number grammar, no unknown or repeated parameter ---------------
    *[
        Case(f"metrics threshold {query!r}", 422, ["query.threshold"], path=metrics_query(query),
             method="GET", headers={}, errors=[(QT, kind)])
        for query, kind in [
            ("threshold=0_1", PARSE),
            ("threshold=1_0e-1", PARSE),
            ("threshold=0x1", PARSE),
            ("threshold=%2B0.5", PARSE),  # a literal '+'
            ("threshold=+0.5", PARSE),  # '+' is a space in a query string
            ("threshold=%200.5", PARSE),
            ("threshold=0.5%20", PARSE),
            ("threshold=.5", PARSE),
            ("threshold=5.", PARSE),
            ("threshold=00.5", PARSE),
            ("threshold=%D9%A1", PARSE),  # ARABIC-INDIC DIGIT ONE: float() reads it as 1
            ("threshold", PARSE),
            ("threshold=1e400", "finite_number"),
            ("threshold=Infinity", "finite_number"),
            ("threshold=-nan", "finite_number"),
        ]
    ],
    Case("metrics misspelled parameter", 422, ["query.treshold", "takes threshold"],
         path="/metrics?treshold=0.9", method="GET", headers={},
         errors=[(["query", "treshold"], EXTRA)]),
    Case("metrics parameter in another case", 422, ["query.Threshold"],
         path="/metrics?Threshold=0.9", method="GET", headers={},
         errors=[(["query", "Threshold"], EXTRA)]),
    Case("metrics threshold repeated", 422, ["query.threshold", "more than once"],
         path="/metrics?threshold=0.5&threshold=0.9", method="GET", headers={},
         errors=[(QT, DUP)]),
    Case("metrics unknown and repeated", 422, ["query.a", "query.threshold"],
         path="/metrics?threshold=0.5&a=1&threshold=0.5&a=2", method="GET", headers={},
         errors=[(["query", "a"], EXTRA), (QT, DUP)]),
    Case("parameter name with a line break", 422, ["query.a\\nb"],
         path="/metrics?a%0Ab=1", method="GET", headers={}, errors=[(["query", "a\nb"], EXTRA)]),
    Case("predict with a stray parameter", 422, ["query.x", "no query parameters"],
         path="/predict?x=1", content=PLAIN, errors=[(["query", "x"], EXTRA)]),
    Case("batch with a threshold in the query", 422, ["query.threshold"],
         path="/predict/batch?threshold=0.5", content=batch_text([BENIGN_TEXT]),
         errors=[(QT, EXTRA)]),
    *[
        Case(f"GET {path} with a parameter", 422, ["query.v"], path=f"{path}?v=1", method="GET",
             headers={}, errors=[(["query", "v"], EXTRA)])
        for path in ["/health", "/model", "/openapi.json", "/docs", "/redoc"]
    ],
    # -- Content-Encoding: only identity ----------------------------------------------------
    Case("gzip body", 415, ["Content-Encoding", "identity"], content=gzip.compress(PLAIN),
         headers={**JSON, "content-encoding": "gzip"}, errors=[(CE, ENCODING)]),
    Case("plain body labelled gzip", 415, ["Content-Encoding"], content=PLAIN,
         headers={**JSON, "content-encoding": "gzip"}, errors=[(CE, ENCODING)]),
    Case("deflate body", 415, ["Content-Encoding"], content=zlib.compress(PLAIN),
         headers={**JSON, "content-encoding": "deflate"}, errors=[(CE, ENCODING)]),
    Case("br label", 415, ["Content-Encoding"], content=PLAIN,
         headers={**JSON, "content-encoding": "br"}, errors=[(CE, ENCODING)]),
    Case("gzip, identity", 415, ["Content-Encoding"], content=PLAIN,
         headers={**JSON, "content-encoding": "gzip, identity"}, errors=[(CE, ENCODING)]),
    Case("identity, GZIP", 415, ["Content-Encoding"], content=PLAIN,
         headers={**JSON, "content-encoding": "identity, GZIP"}, errors=[(CE, ENCODING)]),
    Case("gzip on a batch", 415, ["Content-Encoding"], path=BATCH,
         content=gzip.compress(batch_text([BENIGN_TEXT])),
         headers={**JSON, "content-encoding": "gzip"}, errors=[(CE, ENCODING)]),
    # -- no redirect built from the Host header ---------------------------------------------
    *[
        Case(f"{method} {path} with a trailing slash", 404, ["path"], path=path, method=method,
             content=PLAIN, headers={**JSON, "host": "evil.example"},
             errors=[(["path"], "not_found")])
        for method, path in [("POST", "/predict/"), ("POST", "/predict/batch/"),
                             ("GET", "/metrics/"), ("GET", "/health/"), ("GET", "/docs/")]
    ],
    # -- errors that say the real problem ---------------------------------------------------
    Case("over-long integer", 422, ["body.mitoses", LE10],
         content=pairs(benign_pairs())[:-1].replace('"mitoses": 1', f'"mitoses": {LONG_DIGITS}')
         .encode() + b"}", errors=[(["body", "mitoses"], "less_than_equal")]),
    Case("over-long negative integer", 422, ["body.clump_thickness", GE1],
         content=pairs([("clump_thickness", "-" + LONG_DIGITS),
                        *benign_pairs()[1:]]).encode(),
         errors=[(["body", "clump_thickness"], "greater_than_equal")]),
    Case("over-long integer threshold", 422, ["body.threshold"],
         content=pairs(benign_pairs(("threshold", LONG_DIGITS))).encode(),
         errors=[(["body", "threshold"], "float_type")]),  # as for any int too big for a float
    Case("over-long integer in batch row 2", 422, ["body.instances.2.mitoses", LE10], path=BATCH,
         content=batch_text([BENIGN_TEXT, BENIGN_TEXT,
                             BENIGN_TEXT.replace('"mitoses": 1', f'"mitoses": {LONG_DIGITS}')]),
         errors=[(["body", "instances", 2, "mitoses"], "less_than_equal")]),
    Case("batch over the limit with invalid rows", 422, ["body.instances", "at most 1000"],
         path=BATCH, json_body={"instances": [{**BENIGN, "mitoses": 0}] * (MAX_BATCH + 1)},
         errors=[(["body", "instances"], "too_long")]),
    Case("batch row 999 invalid", 422, ["body.instances.999.mitoses"], path=BATCH,
         json_body={"instances": [BENIGN] * 999 + [body(mitoses=0)]},
         errors=[(["body", "instances", 999, "mitoses"], "greater_than_equal")]),
    Case("batch rows 0 and 3 invalid", 422, ["body.instances.0.x", "body.instances.3.mitoses"],
         path=BATCH, json_body={"instances": [body(x=1), BENIGN, BENIGN, body(mitoses=...)]},
         errors=[(["body", "instances", 0, "x"], EXTRA),
                 (["body", "instances", 3, "mitoses"], "missing")]),
    # -- with API_KEY set, no valid key is a 401 before the body is read ----------------------
    Case("no key, invalid JSON", 401, ["X-API-Key"], content=b'{"mitoses": 1,', keyed=True,
         errors=[(KEY, "missing_api_key")]),
    Case("wrong key, invalid JSON", 401, ["X-API-Key"], content=b"{", keyed=True,
         headers={**JSON, "x-api-key": "wrong"}, errors=[(KEY, "invalid_api_key")]),
    Case("no key, empty body", 401, ["X-API-Key"], content=b"", keyed=True,
         errors=[(KEY, "missing_api_key")]),
    Case("no key, duplicate key", 401, ["X-API-Key"], content=DUPLICATE_MITOSES.encode(),
         keyed=True, errors=[(KEY, "missing_api_key")]),
    Case("no key, wrong content type", 401, ["X-API-Key"], content=PLAIN, keyed=True,
         headers={"content-type": "text/plain"}, errors=[(KEY, "missing_api_key")]),
    Case("wrong key, batch over the limit", 401, ["X-API-Key"], path=BATCH, keyed=True,
         json_body={"instances": [BENIGN] * (MAX_BATCH + 1)},
         headers={**JSON, "x-api-key": API_KEY + "x"}, errors=[(KEY, "invalid_api_key")]),
    Case("no key, bad metrics threshold", 401, ["X-API-Key"], path="/metrics?threshold=0x1",
         method="GET", headers={}, keyed=True, errors=[(KEY, "missing_api_key")]),
    Case("right key, duplicate key", 422, ["body.mitoses"], content=DUPLICATE_MITOSES.encode(),
         keyed=True, headers={**JSON, "x-api-key": API_KEY}, errors=[(["body", "mitoses"], DUP)]),
]  # fmt: skip
ALL_CASES = CASES + HOSTILE


@pytest.fixture(scope="module")
def keyed_client() -> Iterator[httpx.Client]:
    with (
        start_server({"API_KEY": API_KEY}) as live,
        httpx.Client(base_url=live.url, timeout=10.0) as http,
    ):
        yield http


def test_the_hostile_table_has_at_least_30_cases_with_their_errors() -> None:
    assert len(HOSTILE) >= 30
    assert all(case.errors for case in HOSTILE)


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.id for case in ALL_CASES])
def test_bad_input_gets_a_clear_4xx(request: pytest.FixtureRequest, case: Case) -> None:
    client: httpx.Client = request.getfixturevalue("keyed_client" if case.keyed else "client")
    response = case.send(client)
    assert response.status_code == case.expected_status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "location" not in response.headers
    answer = response.json()
    assert set(answer) == {"message", "detail"}
    assert "\n" not in answer["message"]
    for name in case.names:
        assert name in answer["message"], f"{name!r} not in {answer['message']!r}"
    if case.id.endswith("confidence 95"):  # error answers never echo the value sent
        assert "95" not in answer["message"]
    for item in answer["detail"]:
        assert set(item) == {"loc", "msg", "type"}
    if case.errors is not None:
        assert [(item["loc"], item["type"]) for item in answer["detail"]] == case.errors
    # and the service still answers a normal request normally
    headers = {"x-api-key": API_KEY} if case.keyed else {}
    normal = client.post("/predict", json=BENIGN, headers=headers)
    assert normal.status_code == 200, normal.text
    assert normal.json()["class"] == "benign"


def test_the_server_stays_healthy_after_the_table(client: httpx.Client) -> None:
    for case in ALL_CASES:
        if not case.keyed:
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


# -- what the edge still accepts ------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["identity", "IDENTITY", "identity ,identity", ""])
def test_identity_content_encoding_is_served(client: httpx.Client, encoding: str) -> None:
    response = client.post(
        "/predict", content=PLAIN, headers={**JSON, "content-encoding": encoding}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("query", ["0.5", "5e-1", "5E-1", "0", "1", "1.0", "0.25", "2.5e-1"])
def test_json_numbers_in_the_query_are_read(client: httpx.Client, query: str) -> None:
    response = client.get(f"/metrics?threshold={query}")
    assert response.status_code == 200, response.text
    assert response.json()["threshold"] == float(query)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/metrics?threshold=-0.0", None),
        ("GET", "/metrics?threshold=-0", None),
        ("GET", "/metrics?threshold=-0e5", None),
        ("POST", "/predict", {**BENIGN, "threshold": -0.0}),
        ("POST", "/predict/batch", {"instances": [BENIGN], "threshold": -0.0}),
    ],
)
def test_negative_zero_is_answered_as_zero(
    client: httpx.Client, method: str, path: str, payload: Any
) -> None:
    response = client.request(method, path, json=payload)
    assert response.status_code == 200, response.text
    assert b'"threshold":0.0' in response.content
    assert b"-0" not in response.content


def test_the_page_names_no_base_from_the_clients_host(client: httpx.Client) -> None:
    response = client.get("/", headers={"host": "evil.example"})
    assert response.status_code == 200
    assert "evil.example" not in response.text
    assert "<base" not in response.text  # without a root path, relative URLs need no base


@pytest.mark.parametrize("root_path", ["/api", "/deep/prefix"])
def test_the_page_stays_under_a_root_path(root_path: str) -> None:
    # uvicorn --root-path: a proxy serves the app under the prefix and strips it from the path.
    with (
        start_server({"UVICORN_ROOT_PATH": root_path}, command=UVICORN_FACTORY) as live,
        httpx.Client(base_url=live.url, timeout=10.0) as http,
    ):
        response = http.get("/", headers={"host": "evil.example"})
        assert response.status_code == 200
        assert f'<base href="{root_path}/">' in response.text
        assert "evil.example" not in response.text
