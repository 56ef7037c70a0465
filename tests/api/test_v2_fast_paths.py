"""The V2 infer route's fast paths give the answers of the plain code they replace.

- app/api/v2.py `binary_body`: a large binary body is read into one memory map;
- app/v2/codec.py `_json_array`: JSON scores converted through bytearray;
"""

import asyncio
import json
import mmap
from typing import Any, Final

import httpx
import numpy as np
import pytest
from starlette.requests import Request

from app.api.v2 import binary_body
from app.predictor import ServedModel
from app.v2.codec import InferRequest, V2Error, decode_request
from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact
from model.data import Dataset
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
    raw = X.tobytes()
    header = {
        "inputs": [
            {
                "name": "scores",
                "shape": list(X.shape),
                "datatype": "INT64",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    text = json.dumps(header).encode()
    headers = {HEADER: str(len(text)), "Content-Type": "application/octet-stream"}
    answer = client.post(INFER, content=text + raw, headers=headers)
    assert answer.status_code == 200, answer.text
    head, binary = split_binary(answer.content, answer.headers.get(HEADER))
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [
        8 * len(X),
        len(binary) - 8 * len(X),
    ]
    p = np.frombuffer(binary[: 8 * len(X)], dtype="<f8")
    np.testing.assert_allclose(p, artifact.predict_proba(X), rtol=0, atol=1e-12)
    # The same body cut short of its binary data is still a 400 naming the rule.
    short = client.post(INFER, content=text + raw[:-8], headers=headers)
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
