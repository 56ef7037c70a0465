"""The V2 routes over raw HTTP against a live server: KServe's request shapes, every answer
validated against the protocol's schemas (tests/system/v2/v2_protocol.py), and a table of bad
requests,
each a 4xx in the protocol's error shape."""

import json
import struct
from typing import Any, Final

import httpx
import numpy as np
import pytest

from app.openapi.examples import BENIGN, MALIGNANT
from model.features import FEATURE_NAMES
from tests.live_server import start_server
from tests.system.v2.v2_protocol import split_binary, validate

MODEL: Final = "malignancy-predictor"
INFER: Final = f"/v2/models/{MODEL}/infer"
ROWS: Final = [[BENIGN[f] for f in FEATURE_NAMES], [MALIGNANT[f] for f in FEATURE_NAMES]]
FLAT: Final = [*ROWS[0], *ROWS[1]]
HEADER: Final = "Inference-Header-Content-Length"


def scores(
    data: Any = None, shape: Any = None, datatype: str = "INT64", **extra: Any
) -> dict[str, Any]:
    return {
        "name": "scores",
        "shape": [2, 9] if shape is None else shape,
        "datatype": datatype,
        "data": ROWS if data is None else data,
        **extra,
    }


def binary_body(header: dict[str, Any], *parts: bytes) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + b"".join(parts), {
        HEADER: str(len(text)),
        "Content-Type": "application/octet-stream",
    }


def binary_scores(array: np.ndarray, datatype: str, size: int | None = None) -> dict[str, Any]:
    raw = array.tobytes()
    return {
        "name": "scores",
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw) if size is None else size},
    }


@pytest.mark.parametrize(
    "path",
    [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL}",
        f"/v2/models/{MODEL}/ready",
    ],
)
def test_metadata_and_health_answers_are_valid(client: httpx.Client, path: str) -> None:
    kind = {
        "/v2": "server_metadata",
        "/v2/health/live": "server_live",
        "/v2/health/ready": "server_ready",
        f"/v2/models/{MODEL}": "model_metadata",
        f"/v2/models/{MODEL}/ready": "model_ready",
    }[path]
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    validate(kind, answer.json())


def test_kserve_json_shape(client: httpx.Client) -> None:
    """KServe's InferenceRESTClient: model_name and a generated id in the body, the body as JSON
    (with application/json, or with no Content-Type at all)."""
    body = {"id": "8c0f", "model_name": MODEL, "inputs": [scores()]}
    for headers in ({"Content-Type": "application/json"}, {}):
        answer = client.post(INFER, content=json.dumps(body).encode(), headers=headers)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        validate("inference_response", result)
        assert result["id"] == "8c0f"
        assert result["model_name"] == MODEL
        assert result["outputs"][1]["data"] == ["benign", "malignant"]


def test_kserve_binary_shape(client: httpx.Client) -> None:
    """KServe's binary request: application/octet-stream, the JSON's length in
    Inference-Header-Content-Length, FP32 tensor bytes after it; binary outputs back."""
    X = np.array(ROWS, dtype="<f4")
    header = {
        "id": "1",
        "model_name": MODEL,
        "inputs": [binary_scores(X, "FP32")],
        "outputs": [
            {"name": "probability", "parameters": {"binary_data": True}},
            {"name": "class", "parameters": {"binary_data": True}},
        ],
    }
    body, headers = binary_body(header, X.tobytes())
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    result, binary = split_binary(answer.content, answer.headers.get(HEADER))
    validate("inference_response", result)
    sizes = [o["parameters"]["binary_data_size"] for o in result["outputs"]]
    assert sizes == [16, 2 * 4 + len("benign") + len("malignant")]
    probability = np.frombuffer(binary[:16], dtype="<f8")
    assert probability[0] < 0.2 < probability[1]
    classes = binary[16:]
    assert classes == struct.pack("<I", 6) + b"benign" + struct.pack("<I", 9) + b"malignant"


def test_json_and_binary_answers_agree(client: httpx.Client) -> None:
    json_answer = client.post(INFER, json={"inputs": [scores()]}).json()
    X = np.array(ROWS, dtype="<i1")
    body, headers = binary_body({"inputs": [binary_scores(X, "INT8")]}, X.tobytes())
    binary_answer = client.post(INFER, content=body, headers=headers).json()
    assert binary_answer == json_answer
    flat = client.post(INFER, json={"inputs": [scores(data=FLAT)]}).json()
    assert flat == json_answer


@pytest.mark.parametrize("datatype", ["INT64", "UINT8", "FP32", "FP64"])
@pytest.mark.parametrize("row", ROWS, ids=["benign", "malignant"])
def test_one_row_gets_the_bits_of_predict(
    client: httpx.Client, row: list[int], datatype: str
) -> None:
    """A single row is scored as /predict scores it, whatever route it comes by (one row in
    plain floats, app/core/dataplane.py), so the answers agree to the last bit."""
    body = dict(zip(FEATURE_NAMES, row, strict=True))
    native = client.post("/predict", json=body).json()["probability"]
    batch = client.post("/predict/batch", json={"instances": [body]}).json()
    v2 = client.post(INFER, json={"inputs": [scores(data=row, shape=[1, 9], datatype=datatype)]})
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == [native]
    assert batch["predictions"][0]["probability"] == native


def _feature_inputs(n_rows: int = 2, **overrides: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": f,
            "shape": [n_rows],
            "datatype": "INT32",
            "data": [r[j] for r in ROWS][:n_rows],
            **overrides,
        }
        for j, f in enumerate(FEATURE_NAMES)
    ]


X2 = np.array(ROWS, dtype="<i4")

# (id, body or (body bytes, headers), status, words the error must contain)
BAD_REQUESTS: Final[list[tuple[str, Any, int, str]]] = [
    ("not JSON", (b"{nope", {}), 400, "not valid JSON"),
    ("empty body", (b"", {}), 400, "empty"),
    ("JSON array", [1, 2], 400, "must be a JSON object"),
    (
        "NaN",
        (
            json.dumps({"inputs": [scores(shape=[1, 9], datatype="FP64", data=[2] * 9)]})
            .replace("[2, ", "[NaN, ", 1)
            .encode(),
            {},
        ),
        400,
        "not valid JSON",
    ),
    ("duplicate key", (b'{"inputs": [], "inputs": []}', {}), 400, "repeats a key"),
    (
        "duplicate key in a tensor",
        (
            json.dumps({"inputs": [scores()]})
            .replace('"datatype"', '"datatype": "FP64", "datatype"', 1)
            .encode(),
            {},
        ),
        400,
        "repeats a key",
    ),
    ("no inputs", {"inputs": []}, 400, "non-empty list"),
    ("inputs missing", {"id": "1"}, 400, "inputs must be"),
    ("unknown top-level field", {"inputs": [scores()], "extra": 1}, 400, "unknown field 'extra'"),
    ("unknown tensor field", {"inputs": [scores(contents=[1])]}, 400, "unknown field 'contents'"),
    ("id not a string", {"id": 7, "inputs": [scores()]}, 400, "id must be a string"),
    ("other model_name in body", {"model_name": "other", "inputs": [scores()]}, 400, "model_name"),
    (
        "fraction",
        {"inputs": [scores(data=[[5.5, 1, 1, 1, 2, 1, 3, 1, 1], ROWS[1]], datatype="FP64")]},
        400,
        "element 0 (row 0, clump_thickness) must be a whole number from 1 to 10",
    ),
    (
        "zero",
        {"inputs": [scores(data=[ROWS[0], [*ROWS[1][:8], 0]])]},
        400,
        "element 17 (row 1, mitoses)",
    ),
    (
        "eleven",
        {"inputs": [scores(data=[ROWS[0], [11, *ROWS[1][1:]]])]},
        400,
        "element 9 (row 1, clump_thickness)",
    ),
    (
        "negative",
        {"inputs": [scores(data=[ROWS[0], [-3, *ROWS[1][1:]]])]},
        400,
        "whole number from 1 to 10",
    ),
    (
        "huge integer",
        {"inputs": [scores(data=[ROWS[0], [10**30, *ROWS[1][1:]]])]},
        400,
        "element 9 (row 1, clump_thickness)",
    ),
    (
        "string value",
        {"inputs": [scores(data=[ROWS[0], ["5", *ROWS[1][1:]]])]},
        400,
        "only numbers",
    ),
    (
        "boolean value",
        {"inputs": [scores(data=[ROWS[0], [True, *ROWS[1][1:]]])]},
        400,
        "not booleans",
    ),
    ("null value", {"inputs": [scores(data=[ROWS[0], [None, *ROWS[1][1:]]])]}, 400, "only numbers"),
    ("ragged rows", {"inputs": [scores(data=[ROWS[0], ROWS[1][:8]])]}, 400, "nested as its shape"),
    (
        "deeper nesting",
        {"inputs": [scores(data=[[[v] for v in r] for r in ROWS])]},
        400,
        "only numbers",
    ),
    (
        "flat data holding a list",
        {"inputs": [scores(data=[*FLAT[:17], [1]])]},
        400,
        "only numbers",
    ),
    (
        "integer beyond a float",
        (
            json.dumps({"inputs": [scores(data=[2.0] * 18, datatype="FP64")]})
            .replace("2.0", "1" * 400, 1)
            .encode(),
            {},
        ),
        400,
        "not a whole number from 1 to 10",
    ),
    (
        "boolean among floats",
        {"inputs": [scores(data=[[*ROWS[0][:8], 1.0], [True, *ROWS[1][1:]]], datatype="FP32")]},
        400,
        "not booleans",
    ),
    (
        "fraction in an INT64 tensor",
        {"inputs": [scores(data=[*FLAT[:17], 1.5])]},
        400,
        "element 17 (row 1, mitoses)",
    ),
    (
        "data longer than shape",
        {"inputs": [scores(data=[*FLAT, 1])]},
        400,
        "has 19 values; its shape needs 18",
    ),
    (
        "data shorter than shape",
        {"inputs": [scores(data=ROWS[0], shape=[2, 9])]},
        400,
        "has 9 values; its shape needs 18",
    ),
    (
        "nested unlike shape",
        {"inputs": [scores(data=[ROWS], shape=[2, 9])]},
        400,
        "nested as its shape",
    ),
    (
        "wrong width",
        {"inputs": [scores(data=[r[:8] for r in ROWS], shape=[2, 8])]},
        400,
        "shape must be [n, 9]",
    ),
    (
        "one-dimensional scores",
        {"inputs": [scores(data=ROWS[0], shape=[9])]},
        400,
        "shape must be [n, 9]",
    ),
    ("negative dimension", {"inputs": [scores(shape=[-2, 9])]}, 400, "non-negative integers"),
    ("zero rows", {"inputs": [scores(data=[], shape=[0, 9])]}, 400, "no rows"),
    (
        "too many rows",
        {"inputs": [scores(data=[], shape=[100_001, 9])]},
        400,
        "at most 100000 are allowed (V2_MAX_ROWS)",
    ),
    ("BOOL datatype", {"inputs": [scores(datatype="BOOL")]}, 400, "datatype must be one of"),
    ("BYTES datatype", {"inputs": [scores(datatype="BYTES")]}, 400, "datatype must be one of"),
    ("FP16 datatype", {"inputs": [scores(datatype="FP16")]}, 400, "datatype must be one of"),
    ("lower-case datatype", {"inputs": [scores(datatype="int64")]}, 400, "datatype must be one of"),
    (
        "unknown input name",
        {"inputs": [{**scores(), "name": "input-0"}]},
        400,
        "inputs[0] is not an input of this model",
    ),
    (
        "same input twice",
        {"inputs": _feature_inputs() + _feature_inputs()[:1]},
        400,
        "same tensor twice",
    ),
    ("mixed layouts", {"inputs": [scores(), *_feature_inputs()]}, 400, "mix layouts"),
    (
        "a feature missing",
        {"inputs": _feature_inputs()[:8]},
        400,
        "lack the feature tensor(s) 'mitoses'",
    ),
    (
        "feature lengths differ",
        {"inputs": _feature_inputs()[:8] + _feature_inputs(1)[8:]},
        400,
        "same shape [n]",
    ),
    (
        "feature tensor 2-D",
        {
            "inputs": [
                *_feature_inputs()[:8],
                {**_feature_inputs()[8], "shape": [2, 1], "data": [[1], [1]]},
            ]
        },
        400,
        "shape must be [n]",
    ),
    (
        "data and binary size",
        {"inputs": [scores(parameters={"binary_data_size": 72})]},
        400,
        "either data or parameters.binary_data_size",
    ),
    (
        "neither data nor binary",
        {"inputs": [{"name": "scores", "shape": [2, 9], "datatype": "INT64"}]},
        400,
        "either data or",
    ),
    (
        "threshold above 1",
        {"parameters": {"threshold": 1.5}, "inputs": [scores()]},
        400,
        "threshold must be a number from 0 to 1",
    ),
    (
        "threshold a string",
        {"parameters": {"threshold": "0.5"}, "inputs": [scores()]},
        400,
        "threshold must be a number",
    ),
    (
        "threshold a boolean",
        {"parameters": {"threshold": True}, "inputs": [scores()]},
        400,
        "threshold must be a number",
    ),
    (
        "parameter an object",
        {"parameters": {"x": {"y": 1}}, "inputs": [scores()]},
        400,
        "must be a string, a number or a boolean",
    ),
    (
        "parameters a list",
        {"parameters": [1], "inputs": [scores()]},
        400,
        "parameters must be a JSON object",
    ),
    (
        "binary_data_output not bool",
        {"parameters": {"binary_data_output": 1}, "inputs": [scores()]},
        400,
        "binary_data_output must be true or false",
    ),
    (
        "shared memory",
        {"inputs": [scores(parameters={"shared_memory_region": "r"})]},
        400,
        "not supported",
    ),
    (
        "classification extension",
        {"inputs": [scores()], "outputs": [{"name": "class", "parameters": {"classification": 2}}]},
        400,
        "not supported",
    ),
    (
        "unknown output",
        {"inputs": [scores()], "outputs": [{"name": "logits"}]},
        400,
        "outputs[0].name must be one of",
    ),
    (
        "output twice",
        {"inputs": [scores()], "outputs": [{"name": "class"}, {"name": "class"}]},
        400,
        "same output twice",
    ),
    (
        "outputs not a list",
        {"inputs": [scores()], "outputs": {"name": "class"}},
        400,
        "outputs must be a list",
    ),
    (
        "binary size does not fit the shape",
        binary_body({"inputs": [binary_scores(X2, "INT32", size=70)]}, X2.tobytes()),
        400,
        "binary_data_size is 70 bytes; its shape and datatype need 72",
    ),
    (
        "binary sizes exceed the body",
        binary_body({"inputs": [binary_scores(X2, "INT32")]}, X2.tobytes()[:40]),
        400,
        "body ends before its binary data",
    ),
    (
        "bytes left over",
        binary_body({"inputs": [binary_scores(X2, "INT32")]}, X2.tobytes(), b"\x00" * 8),
        400,
        "8 bytes after the JSON header",
    ),
    (
        "binary value out of range",
        binary_body({"inputs": [binary_scores(X2 * 2, "INT32")]}, (X2 * 2).tobytes()),
        400,
        "element 9 (row 1, clump_thickness)",
    ),
    (
        "binary NaN",
        binary_body(
            {"inputs": [binary_scores(np.full((1, 9), np.nan), "FP64")]},
            np.full((1, 9), np.nan).tobytes(),
        ),
        400,
        "element 0 (row 0, clump_thickness)",
    ),
    (
        "header length past the body",
        (json.dumps({"inputs": [scores()]}).encode(), {HEADER: "100000"}),
        400,
        "cannot end past the body",
    ),
    (
        "header length not a number",
        (json.dumps({"inputs": [scores()]}).encode(), {HEADER: "12x"}),
        400,
        "whole number of bytes",
    ),
    (
        "header length zero",
        (json.dumps({"inputs": [scores()]}).encode(), {HEADER: "0"}),
        400,
        "from 1 to",
    ),
    (
        "header length cuts the JSON",
        (json.dumps({"inputs": [scores()]}).encode(), {HEADER: "10"}),
        400,
        "not valid JSON",
    ),
    (
        "multipart content type",
        (
            json.dumps({"inputs": [scores()]}).encode(),
            {"Content-Type": "multipart/form-data; boundary=x"},
        ),
        415,
        "Content-Type must be",
    ),
    (
        "gzip content encoding",
        (json.dumps({"inputs": [scores()]}).encode(), {"Content-Encoding": "gzip"}),
        415,
        "Content-Encoding",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "words"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request(client: httpx.Client, body: Any, status: int, words: str) -> None:
    if isinstance(body, tuple):
        content, headers = body
        answer = client.post(INFER, content=content, headers=headers)
    else:
        answer = client.post(INFER, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    validate("error", answer.json())
    assert words in answer.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", "/v2/models/another-model", 404, f"serves one model, '{MODEL}'"),
        ("GET", "/v2/models/another-model/ready", 404, "serves one model"),
        ("POST", "/v2/models/another-model/infer", 404, "serves one model"),
        ("GET", f"/v2/models/{MODEL}/versions/2", 404, "has one version"),
        ("GET", f"/v2/models/{MODEL}/versions/2/ready", 404, "has one version"),
        ("POST", f"/v2/models/{MODEL}/versions/2/infer", 404, "has one version"),
        ("GET", "/v2/no-such-endpoint", 404, "no such /v2 endpoint"),
        ("POST", "/v2/health/live", 405, "Method Not Allowed"),
        ("GET", INFER, 405, "Method Not Allowed"),
    ],
)
def test_unknown_paths_and_methods(
    client: httpx.Client, method: str, path: str, status: int, words: str
) -> None:
    answer = client.request(method, path, json={"inputs": [scores()]})
    assert answer.status_code == status
    validate("error", answer.json())
    assert words in answer.json()["error"]


def test_error_never_echoes_input(client: httpx.Client) -> None:
    """Values are never echoed; an unknown key is named only when it looks like an identifier."""
    marker = "ZZ-echo-ZZ"
    for body in (
        {"inputs": [{**scores(), "name": marker}]},
        {"inputs": [scores()], "outputs": [{"name": marker}]},
        {"inputs": [scores(datatype=marker)]},
        {"model_name": marker, "inputs": [scores()]},
    ):
        answer = client.post(INFER, json=body)
        assert answer.status_code == 400
        assert marker not in answer.text


def test_body_limits_in_the_v2_shape() -> None:
    """V2 infer takes bodies up to V2_MAX_BODY_BYTES, larger than MAX_BODY_BYTES; over it (declared
    or streamed) is a 413 in the protocol's shape, and the native routes keep their own limit."""
    env = {"MAX_BODY_BYTES": "4096", "V2_MAX_BODY_BYTES": "100000", "V2_MAX_ROWS": "5000"}
    with start_server(env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        rows = np.ones((2000, 9), dtype=np.int64)
        answer = http.post(INFER, json={"inputs": [scores(data=rows.tolist(), shape=[2000, 9])]})
        assert answer.status_code == 200, answer.text  # about 40 kB: over MAX_BODY_BYTES
        big = json.dumps(
            {"inputs": [scores(data=np.ones((5000, 9), int).tolist(), shape=[5000, 9])]}
        ).encode()
        assert len(big) > 100_000
        for content in (big, iter([big[:60_000], big[60_000:]])):  # declared, then chunked
            answer = http.post(INFER, content=content)
            assert answer.status_code == 413
            validate("error", answer.json())
            assert "100000 bytes (V2_MAX_BODY_BYTES)" in answer.json()["error"]
        native = http.post(
            "/predict", content=b" " * 5000, headers={"Content-Type": "application/json"}
        )
        assert native.status_code == 413
        assert "MAX_BODY_BYTES" in native.json()["message"]
        assert "/v2" in http.get("/openapi.json").text
        too_many = http.post(INFER, json={"inputs": [scores(data=[], shape=[5001, 9])]})
        assert "at most 5000" in too_many.json()["error"]


def test_model_name_setting() -> None:
    with (
        start_server({"V2_MODEL_NAME": "wbc"}) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v2/models/wbc/ready").json() == {"name": "wbc", "ready": True}
        answer = http.post("/v2/models/wbc/infer", json={"inputs": [scores()]})
        assert answer.json()["model_name"] == "wbc"
        assert http.get(f"/v2/models/{MODEL}").status_code == 404
