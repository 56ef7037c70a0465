"""app/api/json_strict.py: duplicate keys are found with their path, on the fast count and the
exact scan alike, and integers of any length are read."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from app.api.json_strict import (
    DuplicateKeyError,
    check_unique_keys,
    count_keys,
    duplicate_key_path,
    keys_certainly_unique,
    loads,
)
from app.api.schemas import BatchRequest, PredictRequest, Scores, limited_batch_request
from model.features import FEATURE_NAMES

BENIGN = dict.fromkeys(FEATURE_NAMES, 1)
BENIGN_TEXT = json.dumps(BENIGN)

PATHS = [
    ('{"a": 1}', None),
    ('{"a": 1, "a": 2}', ["a"]),
    ('{"a": 1, "\\u0061": 2}', ["a"]),
    ('{"a": {"b": 1, "b": 1}}', ["a", "b"]),
    ('[{"a": 1}, {"b": [0, {"c": 1, "c": 2}]}]', [1, "b", 1, "c"]),
    # the first repetition in the text: the nested one comes before the outer "a" repeats
    ('{"a": {"x": 1, "x": 2}, "a": 3}', ["a", "x"]),
    ('{"a": 1, "b": {"x": 1, "x": 2}, "a": 3}', ["b", "x"]),
    ('{"a": 1, "a": 2, "b": {"x": 1, "x": 2}}', ["a"]),
    ('{"a": 1, "A": 2, "a ": 3}', None),
    ('{"": 1, "": 2}', [""]),
    ('{"instances": [{}, {}, {"m": 1, "m": 2}]}', ["instances", 2, "m"]),
    ("[[[[[]]]]]", None),
    ('"a:b"', None),
    ("17", None),
]


@pytest.mark.parametrize(("text", "path"), PATHS)
def test_duplicate_key_path(text: str, path: list[str | int] | None) -> None:
    assert duplicate_key_path(text) == path
    if path is None:
        assert loads(text) == json.loads(text)
    else:
        with pytest.raises(DuplicateKeyError) as raised:
            loads(text)
        assert raised.value.path == path


def test_a_deep_body_is_scanned_without_recursion() -> None:
    depth = 800
    text = '{"k": ' * depth + '{"x": 1, "x": 2}' + "}" * depth
    assert duplicate_key_path(text) == ["k"] * depth + ["x"]


@pytest.mark.parametrize(("sign", "expected_sign"), [("", 1), ("-", -1)], ids=["+", "-"])
def test_integers_of_any_length_are_read(sign: str, expected_sign: int) -> None:
    assert loads(f'{{"n": {sign}{"7" * 5000}}}') == {"n": expected_sign * 10**4300}
    assert loads(f"{sign}{'7' * 4300}") == int(f"{sign}{'7' * 4300}")  # within the limit: exact


def test_invalid_json_is_a_decode_error_as_for_json_loads() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"a": 1,')


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int
    y: int | None = None


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int | None = None
    inner: Inner | None = None
    tags: dict[str, Any] | None = None
    rows: list[Inner] = []


class Ignoring(BaseModel):
    model_config = ConfigDict(extra="ignore")
    a: int


MODELS: list[tuple[type[BaseModel], str]] = [
    (PredictRequest, BENIGN_TEXT),
    (PredictRequest, json.dumps({**BENIGN, "threshold": None})),
    (Scores, BENIGN_TEXT),
    (BatchRequest, json.dumps({"instances": [BENIGN] * 3, "threshold": 0.5})),
    (limited_batch_request(5), json.dumps({"instances": [BENIGN] * 5})),
    (Open, '{"a": 1, "inner": {"x": 1}, "tags": {"p": {"q": [1, {"r": 2}]}}, "z": {"w": 1}}'),
    (Open, '{"rows": [{"x": 1}, {"x": 2, "y": 3}], "extra": [{"e": 1}, {"f": null}]}'),
]


def _keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_keys(v) for v in value.values())
    if isinstance(value, list):
        return sum(_keys(v) for v in value)
    return 0


@pytest.mark.parametrize(("model", "text"), MODELS)
def test_count_keys_equals_the_keys_of_the_body(model: type[BaseModel], text: str) -> None:
    valid = model.model_validate_json(text)
    assert count_keys(valid) == _keys(json.loads(text))
    assert keys_certainly_unique(text.encode(), valid)
    check_unique_keys(text.encode(), valid)


@pytest.mark.parametrize(("model", "text"), MODELS)
def test_a_repeated_key_defeats_the_count_and_is_found(model: type[BaseModel], text: str) -> None:
    key = next(iter(json.loads(text)))
    repeated = f'{{"{key}": null, {text[1:]}'.encode()
    valid = model.model_validate_json(repeated)  # the last value wins, for pydantic
    assert not keys_certainly_unique(repeated, valid)
    with pytest.raises(DuplicateKeyError) as raised:
        check_unique_keys(repeated, valid)
    assert raised.value.path == [key]


def test_a_colon_in_a_string_takes_the_exact_scan_and_passes() -> None:
    text = b'{"a": 1, "tags": {"url": "http://x:80"}, "z": "a:b"}'
    valid = Open.model_validate_json(text)
    assert not keys_certainly_unique(text, valid)
    check_unique_keys(text, valid)  # no error: nothing is repeated


def test_a_model_that_drops_keys_is_still_checked_exactly() -> None:
    text = b'{"a": 1, "b": 2, "b": 3}'
    valid = Ignoring.model_validate_json(text)
    with pytest.raises(DuplicateKeyError) as raised:
        check_unique_keys(text, valid)
    assert raised.value.path == ["b"]
    check_unique_keys(b'{"a": 1, "b": 2}', Ignoring.model_validate_json(b'{"a": 1, "b": 2}'))


KEYS = st.sampled_from(["a", "b", "mitoses", "\\u0061"])
SCALAR_TEXT = st.sampled_from(["1", "null", "-0.5", '"s"', '"x:y"', "true"])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 3) -> str:
    """JSON text whose objects may repeat a key (written raw, so they can)."""
    if depth == 0 or draw(st.booleans()):
        return draw(SCALAR_TEXT)
    children = draw(st.lists(json_texts(depth - 1), max_size=3))
    if draw(st.booleans()):
        return "[" + ", ".join(children) + "]"
    keys = draw(st.lists(KEYS, min_size=len(children), max_size=len(children)))
    return "{" + ", ".join(f'"{k}": {v}' for k, v in zip(keys, children, strict=True)) + "}"


def _reference_path(node: Any, path: list[str | int]) -> list[str | int] | None:
    """The first repeated key, by plain recursion over json.loads's pairs."""
    if isinstance(node, tuple):
        seen: set[str] = set()
        for key, value in node:
            if key in seen:
                return [*path, key]
            seen.add(key)
            if (found := _reference_path(value, [*path, key])) is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if (found := _reference_path(item, [*path, index])) is not None:
                return found
    return None


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(text=json_texts())
def test_the_path_agrees_with_a_plain_recursive_search(text: str) -> None:
    tree = json.loads(text, object_pairs_hook=tuple)
    expected = _reference_path(tree, [])
    assert duplicate_key_path(text) == expected
    if expected is None:
        assert loads(text) == json.loads(text)
    else:
        with pytest.raises(DuplicateKeyError):
            loads(text)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.sampled_from(FEATURE_NAMES), max_size=3).map(tuple), min_size=1, max_size=4
    ),
    threshold_twice=st.booleans(),
)
def test_batch_bodies_with_repeated_scores_are_caught(
    rows: list[tuple[str, ...]], threshold_twice: bool
) -> None:
    """Each row repeats the named features (written before the row's own values, so the body
    stays valid for pydantic): the check fails exactly when something is repeated."""
    texts = ["{" + "".join(f'"{k}": 2, ' for k in extra) + BENIGN_TEXT[1:] for extra in rows]
    threshold = '"threshold": 0.1, "threshold": 0.2' if threshold_twice else '"threshold": 0.2'
    text = ('{"instances": [' + ", ".join(texts) + "], " + threshold + "}").encode()
    valid = BatchRequest.model_validate_json(text)
    repeated = threshold_twice or any(rows)
    assert keys_certainly_unique(text, valid) is not repeated
    if repeated:
        with pytest.raises(DuplicateKeyError):
            check_unique_keys(text, valid)
    else:
        check_unique_keys(text, valid)
