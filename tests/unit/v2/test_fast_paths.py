"""The V2 infer route's fast paths give the answers of the plain code they replace.

- app/v2/routes.py `read_binary_request`: binary tensors read chunk by chunk, never whole;
- app/v2/codec.py `_json_values`: JSON scores converted through bytearray;
- app/v2/codec.py `encode_response`: the class tensor written from runs of eight rows and
  spliced into the JSON.
"""

import asyncio
import json
import re
import tracemalloc
from functools import partial
from typing import Any, Final

import httpx
import numpy as np
import pydantic_core
import pytest
from starlette.requests import Request

from app.core.dataplane import ServedModel
from app.v2.codec import (
    DATATYPES,
    InferRequest,
    RequestedOutput,
    V2Error,
    decode_request,
    encode_response,
)
from app.v2.routes import read_binary_request
from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact
from model.data import Dataset
from model.features import CLASS_NAMES, FEATURE_NAMES
from scripts.bench.v2_bodies import binary_body as v2_binary_body
from tests.system.v2.v2_protocol import split_binary

MODEL: Final = "malignancy-predictor"
INFER: Final = f"/v2/models/{MODEL}/infer"
HEADER: Final = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return ServedModel.load(DEFAULT_ARTIFACT_PATH)


def _rows(dataset: Dataset, n: int) -> np.ndarray:
    return dataset.X[np.arange(n) % len(dataset.X)].astype(np.int64)


# -- the body, read as it arrives -------------------------------------------------------------
def _read(
    body: bytes, header_length: int, chunk: int = 65536, *, declared: bool = True
) -> InferRequest:
    """read_binary_request over `body` delivered in chunks of `chunk` bytes, as uvicorn
    delivers it; with or without a Content-Length (chunked transfer encoding)."""
    headers = [(b"content-length", str(len(body)).encode())] if declared else []
    starts = range(0, max(len(body), 1), chunk)
    messages = ((i, body[i : i + chunk]) for i in starts)  # each made as it is received

    async def receive() -> dict[str, Any]:
        i, part = next(messages, (-1, b""))
        if i < 0:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": part, "more_body": i + chunk < len(body)}

    scope = {"type": "http", "method": "POST", "headers": headers}
    reading = read_binary_request(
        Request(scope, receive),
        str(header_length),
        model_name=MODEL,
        model_version="v",
        max_rows=100_000,
    )
    return asyncio.run(reading)


def _whole(body: bytes, header_length: int) -> InferRequest:
    return decode_request(
        body, str(header_length), model_name=MODEL, model_version="v", max_rows=100_000
    )


def _binary(inputs: list[tuple[dict[str, Any], bytes]]) -> tuple[bytes, int]:
    """A body of `inputs` (each its header entry and its bytes, b"" for JSON data)."""
    text = json.dumps({"inputs": [entry for entry, _ in inputs]}).encode()
    return text + b"".join(raw for _, raw in inputs), len(text)


def _scores(X: np.ndarray, datatype: str) -> tuple[dict[str, Any], bytes]:
    raw = X.astype(DATATYPES[datatype]).tobytes()
    entry = {"name": "scores", "shape": list(X.shape), "datatype": datatype}
    return {**entry, "parameters": {"binary_data_size": len(raw)}}, raw


def _features(X: np.ndarray) -> list[tuple[dict[str, Any], bytes]]:
    """Nine feature tensors in shuffled order, of several datatypes, two as JSON data."""
    inputs = []
    for j in (3, 0, 8, 5, 1, 7, 2, 6, 4):
        datatype = ("INT8", "UINT16", "FP32", "INT64", "FP64")[j % 5]
        entry = {"name": FEATURE_NAMES[j], "shape": [len(X)], "datatype": datatype}
        if j in (2, 7):
            inputs.append(({**entry, "data": X[:, j].tolist()}, b""))
            continue
        raw = X[:, j].astype(DATATYPES[datatype]).tobytes()
        inputs.append(({**entry, "parameters": {"binary_data_size": len(raw)}}, raw))
    return inputs


@pytest.mark.parametrize("chunk", [1, 3, 7, 8, 9, 100, 65536])
@pytest.mark.parametrize("layout", ["INT64", "FP32", "UINT8", "features"])
def test_streamed_rows_are_the_whole_bodys(dataset: Dataset, chunk: int, layout: str) -> None:
    X = _rows(dataset, 300)
    body, length = _binary(_features(X) if layout == "features" else [_scores(X, layout)])
    streamed = _read(body, length, chunk)
    np.testing.assert_array_equal(streamed.rows, X)
    np.testing.assert_array_equal(_whole(body, length).rows, X)


@pytest.mark.parametrize("chunk", [1, 7, 64, 65536])
@pytest.mark.parametrize("index", [0, 7, 8, 1234, 2698])
@pytest.mark.parametrize("datatype", ["INT64", "FP64", "INT16"])
def test_a_bad_value_is_named_wherever_the_chunks_split(
    dataset: Dataset, chunk: int, index: int, datatype: str
) -> None:
    X = _rows(dataset, 300).astype(np.float64)
    X.flat[index] = 11 if datatype != "FP64" else 2.5
    X.flat[2699] = 0  # a later bad value is not the one named
    body, length = _binary([_scores(X, datatype)])
    row, column = divmod(index, 9)
    words = f"element {index} (row {row}, {FEATURE_NAMES[column]}) must be a whole number"
    for read in (partial(_read, chunk=chunk), _whole):
        with pytest.raises(V2Error, match=re.escape(words)):
            read(body, length)


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (-1, "ends before its binary data does"),
        (-72, "ends before its binary data does"),
        (5, "the body has 5 bytes after the JSON header"),
    ],
)
def test_sizes_that_do_not_add_up(dataset: Dataset, declared: bool, cut: int, words: str) -> None:
    """Refused before any value is read when the Content-Length says so, and at the end of a
    body sent without one; the same message as for a body read whole."""
    body, length = _binary([_scores(_rows(dataset, 20), "INT32")])
    body = body[:cut] if cut < 0 else body + b"\0" * cut
    for read in (partial(_read, chunk=50, declared=declared), _whole):
        with pytest.raises(V2Error, match=re.escape(words)):
            read(body, length)


@pytest.mark.parametrize("declared", [True, False])
def test_a_header_length_past_the_body(declared: bool) -> None:
    body = json.dumps({"inputs": []}).encode()
    with pytest.raises(V2Error, match="cannot end past the body"):
        _read(body, len(body) + 1, 4, declared=declared)


def test_the_body_is_never_held_whole(dataset: Dataset) -> None:
    """Reading a 100,000-row INT64 body (7.2 MB) allocates the score matrix (0.9 MB) and little
    else: the chunks are converted as they come."""
    X = _rows(dataset, 100_000)
    body, length = _binary([_scores(X, "INT64")])
    tracemalloc.start()
    try:
        read = _read(body, length)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(read.rows, X)
    assert len(body) > 7_200_000
    assert peak < X.size + 3 * 65536 + 200_000, f"peak {peak:,} bytes"


@pytest.mark.slow
def test_a_large_binary_request_over_http(
    client: httpx.Client, dataset: Dataset, artifact: Artifact
) -> None:
    X = _rows(dataset, 20_000)  # 1.44 MB of INT64, in many chunks
    sent = v2_binary_body(X)
    answer = client.post(INFER, content=sent.body, headers=sent.headers)
    assert answer.status_code == 200, answer.text
    head, binary = split_binary(answer.content, answer.headers.get(HEADER))
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [
        8 * len(X),
        len(binary) - 8 * len(X),
    ]
    p = np.frombuffer(binary[: 8 * len(X)], dtype="<f8")
    np.testing.assert_allclose(p, artifact.predict_proba(X), rtol=0, atol=1e-12)
    # The same body cut short of its binary data is still a 400 naming the rule.
    short = client.post(INFER, content=sent.body[:-8], headers=sent.headers)
    assert short.status_code == 400
    assert "ends before its binary data" in short.json()["error"]


# -- JSON data -------------------------------------------------------------------------------
def _decode(data: list[Any], n: int) -> InferRequest:
    body = {"inputs": [{"name": "scores", "shape": [n, 9], "datatype": "INT64", "data": data}]}
    return decode_request(
        json.dumps(body).encode(), None, model_name=MODEL, model_version="v", max_rows=1000
    )


@pytest.mark.parametrize("n", [1, 40])  # Python's min and max, and NumPy's, check the values
def test_json_scores_convert_exactly(dataset: Dataset, n: int) -> None:
    X = _rows(dataset, n)
    np.testing.assert_array_equal(_decode(X.ravel().tolist(), n).rows, X)
    nested = _decode(X.tolist(), n).rows
    np.testing.assert_array_equal(nested, X)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "element 5 (row 0, bare_nuclei) must be a whole number from 1 to 10"),
        (11, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (255, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (256, "element 5 (row 0, bare_nuclei) must be a whole number"),  # past a byte
        (-1, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (2**63, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (2**70, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (1.5, "element 5 (row 0, bare_nuclei) must be a whole number"),
        (True, "must hold only numbers, not booleans"),
        (None, "must hold only numbers (no strings, booleans, nulls or lists)"),
        ("3", "must hold only numbers (no strings, booleans, nulls or lists)"),
        ([3], "must hold only numbers (no strings, booleans, nulls or lists)"),
    ],
)
@pytest.mark.parametrize("n", [1, 40])
def test_json_scores_refused_as_before(value: Any, words: str, n: int) -> None:
    data: list[Any] = [5] * (9 * n)
    data[5] = value
    with pytest.raises(V2Error) as refused:
        _decode(data, n)
    assert words in str(refused.value)
    assert refused.value.status == 400


def test_whole_floats_are_scores() -> None:
    data: list[Any] = [5] * 360
    data[7] = 3.0
    rows = _decode(data, 40).rows
    assert rows[0, 7] == 3


# -- the answer ------------------------------------------------------------------------------
def _reference(served: ServedModel, request: InferRequest, X: np.ndarray) -> bytes:
    """The answer as pydantic_core.to_json writes the whole response and bytes.join the
    classes row by row: what encode_response gave before its fast paths."""
    scored = served.score(X, request.threshold)
    n = len(X)
    names = [CLASS_NAMES[m] for m in scored.malignant.tolist()]
    outputs, parts = [], []
    for output in request.outputs:
        if output.name == "probability":
            tensor: dict[str, Any] = {"name": output.name, "datatype": "FP64", "shape": [n]}
            part = scored.probabilities.astype("<f8").tobytes()
            value: Any = scored.probabilities.tolist()
        else:
            tensor = {"name": output.name, "datatype": "BYTES", "shape": [n]}
            part = b"".join(len(c).to_bytes(4, "little") + c.encode() for c in names)
            value = names
        if output.binary:
            parts.append(part)
            tensor["parameters"] = {"binary_data_size": len(part)}
        else:
            tensor["data"] = value
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": MODEL, "model_version": served.version}
    if request.id is not None:
        response["id"] = request.id
    response["parameters"] = {"threshold": scored.threshold}
    response["outputs"] = outputs
    return b"".join([pydantic_core.to_json(response), *parts])


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 1000, 10_001])
@pytest.mark.parametrize(
    "outputs",
    [
        ("probability", "class"),
        ("class",),
        ("class", "probability"),
    ],
)
@pytest.mark.parametrize("binary", [(False, False), (True, True), (False, True), (True, False)])
@pytest.mark.parametrize(("request_id", "threshold"), [(None, None), ('a "quoted" id', 0.25)])
def test_answers_are_to_jsons_bytes(
    served: ServedModel,
    dataset: Dataset,
    n: int,
    outputs: tuple[str, ...],
    binary: tuple[bool, bool],
    request_id: str | None,
    threshold: float | None,
) -> None:
    X = _rows(dataset, n)
    requested = tuple(RequestedOutput(o, b) for o, b in zip(outputs, binary, strict=False))
    request = InferRequest(X, threshold, requested, request_id)
    scored = served.score(X, threshold)
    encoded = encode_response(scored, request, model_name=MODEL, model_version=served.version)
    assert encoded.body == _reference(served, request, X)


def test_a_large_answer_peaks_low(served: ServedModel, dataset: Dataset) -> None:
    """100,000 binary classes joined row by row peaked at 9.9 MB (bytes.join's per-part
    records); the whole 100,000-row binary answer now peaks under 5 MB, 1.9 of it the answer."""
    X = _rows(dataset, 100_000)
    scored = served.score(X, None)
    outputs = (RequestedOutput("probability", True), RequestedOutput("class", True))
    request = InferRequest(X, None, outputs, None)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encode_response(scored, request, model_name=MODEL, model_version=served.version)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
