"""The V2 infer route's fast paths give the answers of the plain code they replace.

- app/api/v2.py `binary_body`: a large binary body is read into one memory map;
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
