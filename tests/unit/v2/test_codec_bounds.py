"""The V2 codec's work is bounded by its answer: crafted JSON costs no more per byte than a
valid tensor, and the rules it is checked by still hold.

Each crafted body (scripts/bench/v2_bodies.py `crafted_json_bodies`) once cost 0.4 to 1.6 s of
CPU at 8 MiB (booleans looked for byte by byte, every object, key and array built before one
was refused); `python -m scripts.bench.body_cost` measures the same over HTTP.
"""

import json
from collections.abc import Callable
from typing import Any, Final

import pytest

from app.v2.codec import InferRequest, V2Error, decode_request
from scripts.bench.v2_bodies import crafted_json_bodies

MAX_ROWS: Final = 100_000
SIZE: Final = 4 * 2**20
ROW: Final = [5, 1, 1, 1, 2, 1, 3, 1, 1]
# CPU per byte of a crafted body, at most this times the valid tensor's (the goal: 3).
CRAFTED: Final = crafted_json_bodies(SIZE)


def _decode(body: bytes) -> InferRequest:
    return decode_request(body, None, model_name="m", model_version="v", max_rows=MAX_ROWS)


def _refusal(body: bytes) -> str:
    """The decoder's refusal of `body`, or "" if it decodes."""
    try:
        _decode(body)
    except V2Error as exc:
        return str(exc)
    return ""


def _request(**fields: Any) -> bytes:
    tensor = {"name": "scores", "shape": [1, 9], "datatype": "INT64", "data": ROW}
    return json.dumps({"inputs": [tensor], **fields}).encode()


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("empty_arrays", "arrays ('[')"),
        ("empty_objects", "objects ('{')"),
        ("many_keys", "keys (':')"),
        ("many_outputs", "objects ('{')"),
        ("many_inputs", "objects ('{')"),
        ("long_shape", "shape has 2097132 dimensions"),
        ("strings", "must hold only numbers"),
        ("booleans", "not booleans"),
        ("nulls", "must hold only numbers"),
        ("floats", "element 0 (row 0, clump_thickness) must be a whole number"),
        ("big_ints", "element 0 (row 0, clump_thickness) must be a whole number"),
        ("last_value_bad", "element 899999 (row 99999, mitoses)"),
    ],
)
def test_crafted_bodies_are_refused_for_what_they_are(name: str, words: str) -> None:
    with pytest.raises(V2Error) as refused:
        _decode(CRAFTED[name])
    assert words in str(refused.value)


@pytest.mark.parametrize("name", ["escapes", "spaced_values", "spaced_true", "whitespace"])
def test_crafted_valid_bodies_are_answered(name: str) -> None:
    assert _decode(CRAFTED[name]).rows.shape[1] == 9


def _after(text: str) -> bytes:
    """A one-row request whose data holds `text` in place of its second value."""
    values = ", ".join(["5", text, *map(str, ROW[2:])])
    head = '{"inputs": [{"name": "scores", "shape": [1, 9], "datatype": "INT64", "data": ['
    return f"{head}{values}]}}]}}".encode()


@pytest.mark.parametrize(
    "body",
    [
        _after("true"),
        _after("false"),
        _after(" " * 200 + "true"),  # past the look-back: the exact check decides
        _after("\n\t\r true"),
        b'{"inputs": [{"name": "scores", "shape": [1, 9], "datatype": "INT64", "data": [true, '
        b"1, 1, 1, 1, 1, 1, 1, 1]}]}",
        _request(id="true " * 40)[:-1].replace(b"[5,", b"[true,", 1) + b"}",  # many words
    ],
)
def test_a_boolean_among_the_values_is_refused(body: bytes) -> None:
    with pytest.raises(V2Error, match="not booleans"):
        _decode(body)


@pytest.mark.parametrize(
    "body",
    [
        _request(outputs=[{"name": "class", "parameters": {"binary_data": False}}]),
        _request(parameters={"binary_data_output": False, "flag": True}),
        _request(id=" true, false, [true ,true" + " " * 100 + "true"),
        _request(id="true " * 40),
    ],
)
def test_booleans_outside_the_values_are_no_values(body: bytes) -> None:
    assert _decode(body).rows.tolist() == [ROW]


Build = Callable[[int], bytes]


def _keys(n: int) -> bytes:
    return _request(parameters={f"k{i}": 1 for i in range(n)})


def _objects(n: int) -> bytes:
    outputs = [{"name": "class"}] * (n - 2)  # the request's and the tensor's are two
    return _request(outputs=outputs)


def _arrays(n: int) -> bytes:
    # The request's inputs, the tensor's shape and data: three arrays, then one per row.
    rows_ = n - 3
    tensor = {"name": "scores", "shape": [rows_, 9], "datatype": "INT64", "data": [ROW] * rows_}
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize(
    ("build", "limit", "words"),
    [
        (_keys, 1024 - 6, "keys (':')"),  # inputs, parameters and the tensor's four
        (_objects, 64, "objects ('{')"),
        (_arrays, MAX_ROWS + 64, "arrays ('[')"),
    ],
)
def test_structure_limits_refuse_only_past_them(build: Build, limit: int, words: str) -> None:
    assert words not in _refusal(build(limit))  # maybe refused, for what it holds
    with pytest.raises(V2Error, match="strings included") as refused:
        _decode(build(limit + 1))
    assert words in str(refused.value)


def test_the_limits_count_characters_in_strings_too() -> None:
    # 2000 in the id, and the request's and the tensor's
    with pytest.raises(V2Error, match=r"holds 2002 objects \('\{'\), strings included"):
        _decode(_request(id="{" * 2000))
