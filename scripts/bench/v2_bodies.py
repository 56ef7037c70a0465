"""The Open Inference Protocol (V2) infer bodies the benchmarks send, built from data set rows.

JSON tensors are written flat, as tritonclient writes them; binary tensors are INT64 (the data
set's own type, 8 bytes a value) with both outputs asked for as binary, as tritonclient asks by
default. `V2Body.headers` are the HTTP headers each needs.
"""

import json
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.data import load_dataset

HEADER_LENGTH: Final = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class V2Body:
    body: bytes
    headers: dict[str, str]
    rows: int


def rows(n: int) -> NDArray[np.int64]:
    """n data set rows, cycling through the file in order."""
    X = load_dataset().X
    return X[np.arange(n) % len(X)].astype(np.int64)


def json_body(X: NDArray[np.int64]) -> V2Body:
    tensor = {
        "name": "scores",
        "shape": list(X.shape),
        "datatype": "INT64",
        "data": X.ravel().tolist(),
    }
    text = json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()
    return V2Body(text, {"Content-Type": "application/json"}, len(X))


def binary_body(X: NDArray[np.int64]) -> V2Body:
    raw = X.astype("<i8").tobytes()
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
    text = json.dumps(header, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(text))}
    return V2Body(text + raw, headers, len(X))
