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


# -- crafted bodies: the costliest JSON an attacker can send within V2_MAX_BODY_BYTES ----------
_ONE_ROW: Final = b'{"name":"scores","shape":[1,9],"datatype":"INT64","data":[1,1,1,1,1,1,1,1,1]}'


def _filled(head: bytes, unit: bytes, tail: bytes, size: int) -> bytes:
    """`head`, `unit` repeated, then `tail`: `size` bytes at most, as close as units allow."""
    return head + unit * max(0, (size - len(head) - len(tail)) // len(unit)) + tail


def _scores_data(unit: bytes, size: int, shape: bytes = b"[1,9]") -> bytes:
    """A `scores` tensor whose data is `unit` (each ending in a comma) repeated."""
    head = b'{"inputs":[{"name":"scores","shape":' + shape + b',"datatype":"INT64","data":['
    return _filled(head, unit, b"1]}]}", size)


def _scores_values(value: bytes, size: int, max_rows: int = 100_000) -> bytes:
    """A `scores` tensor of as many rows of `value` as fit in `size` bytes, its shape matching
    them: the decoder reads every value before it can refuse one."""
    n = min(max_rows, (size - 100) // ((len(value) + 1) * 9))
    head = b'{"inputs":[{"name":"scores","shape":[%d,9],"datatype":"INT64","data":[' % n
    return head + (value + b",") * (9 * n - 1) + value + b"]}]}"


def crafted_json_bodies(size: int) -> dict[str, bytes]:
    """JSON infer bodies of about `size` bytes, each costing the decoder something a valid
    request does not: many objects, keys or arrays, whitespace around `true`, long shapes,
    values of every JSON type, escapes. Each is refused (400) or, for the last, answered."""
    inputs = b'{"inputs":[' + _ONE_ROW
    return {
        "empty_arrays": _scores_data(b"[],", size, b"[2,9]"),
        "empty_objects": _scores_data(b"{},", size),
        "many_keys": _filled(inputs + b'],"parameters":{', b'"k":1,', b'"z":1}}', size),
        "many_outputs": _filled(inputs + b'],"outputs":[', b'{"name":"class"},', b"{}]}", size),
        "many_inputs": _filled(b'{"inputs":[', _ONE_ROW + b",", _ONE_ROW + b"]}", size),
        "long_shape": _filled(b'{"inputs":[{"name":"scores","shape":[', b"1,", b"1]}]}", size),
        "strings": _scores_values(b'"a"', size),
        "escapes": _filled(inputs + b'],"id":"', b"\\u00e9", b'"}', size),
        "floats": _scores_values(b"1.000000000000001", size),
        "big_ints": _scores_values(b"12345678901234567890", size),
        "booleans": _scores_values(b"true", size),
        "nulls": _scores_values(b"null", size),
        "spaced_values": _scores_values(b"1" + b" " * 60, size),
        "last_value_bad": _scores_values(b"1", size)[:-5] + b"11]}]}",
        "spaced_true": _filled(inputs + b'],"id":"', b" " * 60 + b"true", b'"}', size),
        "whitespace": _filled(inputs + b"]", b" ", b"}", size),
    }
