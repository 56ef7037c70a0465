"""The V2 infer route's fast paths give the answers of the plain code they replace.

- app/api/v2.py `binary_body`: a large binary body is read into one memory map;
- app/v2/codec.py `_json_array`: JSON scores converted through bytearray;
- app/v2/codec.py `encode_response`: the class tensor written from runs of eight rows and
  spliced into the JSON.
"""

import asyncio
import json
import mmap
import tracemalloc
from typing import Any, Final

import httpx
import numpy as np
import pydantic_core
import pytest
from starlette.requests import Request

from app.api.v2 import binary_body
from app.predictor import ServedModel
from app.v2.codec import InferRequest, RequestedOutput, V2Error, decode_request, encode_response
from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact
from model.data import Dataset
from model.features import CLASS_NAMES
from scripts.bench.v2_bodies import binary_body as v2_binary_body
from tests.api.v2_protocol import split_binary

MODEL: Final = "malignancy-predictor"
INFER: Final = f"/v2/models/{MODEL}/infer"
HEADER: Final = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def served() -> ServedModel:
    return ServedModel.load(DEFAULT_ARTIFACT_PATH)


def _rows(dataset: Dataset, n: int) -> np.ndarray:
    return dataset.X[np.arange(n) % len(dataset.X)].astype(np.int64)


# -- the body --------------------------------------------------------------------------------
def _read(body: bytes, declared: int | None, chunk: int = 65536) -> bytes | mmap.mmap:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = iter(parts)

    async def receive() -> dict[str, Any]:
        part = next(messages, None)
        if part is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": part, "more_body": part is not parts[-1]}

    scope = {"type": "http", "method": "POST", "headers": headers}
    return asyncio.run(binary_body(Request(scope, receive)))


def test_a_large_body_is_read_into_one_map() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    read = _read(body, len(body))
    assert isinstance(read, mmap.mmap)
    assert read[:] == body


@pytest.mark.parametrize("declared", [None, 1000, (1 << 20) - 1])
def test_a_small_or_undeclared_body_is_bytes(declared: int | None) -> None:
    body = b"x" * (1000 if declared is None else declared)
    read = _read(body, declared)
    assert isinstance(read, bytes)
    assert read == body


@pytest.mark.parametrize("declared", [(2 << 20) - 5, (2 << 20) + 5])
def test_a_body_of_another_length_than_declared_is_read_whole(declared: int) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB, a few bytes more or fewer than declared
    assert bytes(_read(body, declared)) == body


def test_a_large_binary_request_over_http(
    client: httpx.Client, dataset: Dataset, artifact: Artifact
) -> None:
    X = _rows(dataset, 20_000)  # 1.44 MB of INT64: read into a map
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
