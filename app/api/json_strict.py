"""JSON with one reading: a body that repeats a key in any object is refused, with the key's path.

`json.loads`, Starlette's `request.json()` and pydantic's JSON parser all keep the last of two
equal keys, so `{"threshold": 0.9, "threshold": 0.001}` is scored at 0.001 while a proxy, audit
log or second reader that keeps the first sees 0.9. Keys are compared after their escapes are
decoded (`"mi\\u0074oses"` is `"mitoses"`), as every reader compares them.

Two entry points, both raising `DuplicateKeyError` (whose `path` is e.g. `["instances", 3,
"mitoses"]`), protocol-neutral so that every API can answer it in its own error shape:

- `loads(body)`: `json.loads` that refuses duplicate keys, for a body no model has read yet.
  Integers too long for Python's `int` (over 4,300 digits) become a same-sign stand-in of
  10**4300 instead of an error about the whole body, so a model's range check names the field.
- `check_unique_keys(body, validated)`: for a body that a pydantic model has already validated.
  The common case costs one `bytes.count`: in JSON every key is followed by exactly one `:`
  outside strings, so a body with no repeated key and no `:` inside a string has as many `:` as
  the validated model holds keys (fields set, at every level, plus dict keys). A model that keeps
  every key it was given (`extra="forbid"` or `"allow"`, no validator adding keys) then has
  exactly that many only when no key was repeated: more `:` mean a repeated key or a `:` inside a
  string, and only then is the body scanned exactly. A model that drops keys (`extra="ignore"`)
  is still checked correctly, always by the exact scan.
"""

import json
from collections.abc import Callable, Iterator
from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel

_LONG_INT_DIGITS: Final = 4300  # CPython's default int_max_str_digits
_LONG_INT: Final = 10**_LONG_INT_DIGITS
_SCALARS: Final = (int, float, str, bool, bytes, NoneType)
PathPart = str | int


class DuplicateKeyError(ValueError):
    """The JSON text repeats `path[-1]` in the object at `path[:-1]`."""

    def __init__(self, path: list[PathPart]) -> None:
        super().__init__("a JSON object repeats a key")
        self.path = path


def loads(body: bytes | str) -> Any:
    """`json.loads(body)`, refusing duplicate keys (DuplicateKeyError) and reading integers of
    any length. Raises json.JSONDecodeError for invalid JSON, as json.loads does."""
    if isinstance(body, bytes):
        # JSON exchanged between systems is UTF-8 (RFC 8259 8.1): json.loads would also read
        # UTF-16 and UTF-32, which a gateway or a log reading UTF-8 would see otherwise. A
        # UnicodeDecodeError makes FastAPI's bare 400, which the service answers as a 422.
        body = body.decode("utf-8")
    try:
        return json.loads(body, object_pairs_hook=_unique_object, parse_int=_any_length_int)
    except _RepeatedKeyError:
        raise DuplicateKeyError(duplicate_key_path(body) or []) from None


def check_unique_keys(body: bytes, validated: BaseModel) -> None:
    """DuplicateKeyError if the JSON `body`, which `validated` was read from, repeats a key."""
    if keys_certainly_unique(body, validated):
        return
    path = duplicate_key_path(body)
    if path is not None:
        raise DuplicateKeyError(path)


def keys_certainly_unique(body: bytes, validated: BaseModel) -> bool:
    """True when the count of `:` proves that `body` repeats no key; False means it may."""
    return body.count(b":") == count_keys(validated)


def duplicate_key_path(body: bytes | str) -> list[PathPart] | None:
    """The path of the first repeated key in the JSON text, in document order; None if no
    object repeats a key. The text must be valid JSON."""
    tree = json.loads(body, object_pairs_hook=_Pairs, parse_int=_ignore, parse_float=_ignore)
    path: list[PathPart] = []
    stack: list[Iterator[tuple[PathPart, Any, bool]]] = [_entries(tree)]
    while stack:  # depth first, without recursion: a deep body cannot exhaust the stack
        for key, value, repeated in stack[-1]:
            if repeated:
                return [*path, key]
            if isinstance(value, _Pairs | list):
                path.append(key)
                stack.append(_entries(value))
                break
        else:
            stack.pop()
            if path and stack:
                path.pop()
    return None


def count_keys(value: object) -> int:
    """How many keys `value` holds at every level: the fields set of each pydantic model (and its
    extra fields), the keys of each dict."""
    if isinstance(value, BaseModel):
        return _key_counter(type(value))(value)
    if isinstance(value, dict):
        return len(value) + sum(map(count_keys, value.values()))
    if isinstance(value, list | tuple):
        return sum(map(count_keys, value))
    return 0


# -- internals -----------------------------------------------------------------------------------
class _RepeatedKeyError(Exception):
    pass


class _Pairs(tuple[tuple[str, Any], ...]):
    """A JSON object as the (key, value) pairs it was written with."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedKeyError
    return obj


def _any_length_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than int() reads (JSON has no leading zeros): |n| >= this
        return -_LONG_INT if text.startswith("-") else _LONG_INT


def _ignore(text: str) -> None:
    return None


def _entries(node: object) -> Iterator[tuple[PathPart, Any, bool]]:
    """(key or index, value, whether the key was already seen in this object) for each entry."""
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            yield key, value, key in seen
            seen.add(key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield index, item, False


KeyCounter = Callable[[Any], int]


@cache
def _key_counter(model: type[BaseModel]) -> KeyCounter:
    """A function counting the keys an instance of `model` holds, prepared once per class: a
    list of models with no optional or nested field counts as its length times their fields,
    without visiting each (a 1,000-instance batch is counted in constant time)."""
    nested = [name for name, f in model.model_fields.items() if not _is_scalar(f.annotation)]
    fixed = _fixed_key_count(model)
    if fixed is not None:
        return lambda instance: fixed
    extra_allowed = model.model_config.get("extra") == "allow"
    lists_of_fixed = {
        name: n
        for name in nested
        if (n := _list_item_fixed_count(model.model_fields[name].annotation)) is not None
    }

    def counter(instance: Any) -> int:
        fields_set = instance.model_fields_set
        n = len(fields_set)
        for name in nested:
            if name in fields_set:
                value = getattr(instance, name)
                per_item = lists_of_fixed.get(name)
                if per_item is not None and isinstance(value, list):
                    n += per_item * len(value)
                else:
                    n += count_keys(value)
        if extra_allowed and instance.model_extra:  # their keys are in model_fields_set
            n += sum(map(count_keys, instance.model_extra.values()))
        return n

    return counter


def _fixed_key_count(model: type[BaseModel]) -> int | None:
    """The key count every valid instance of `model` has (all fields required and scalar, no
    extra fields), else None."""
    fields = model.model_fields.values()
    if model.model_config.get("extra") == "allow":
        return None
    if all(f.is_required() and _is_scalar(f.annotation) for f in fields):
        return len(fields)
    return None


def _list_item_fixed_count(annotation: Any) -> int | None:
    """For `list[M]` (possibly Annotated) with M of fixed key count, that count; else None."""
    annotation = _unannotated(annotation)
    if get_origin(annotation) is not list:
        return None
    (item,) = get_args(annotation) or (Any,)
    item = _unannotated(item)
    if isinstance(item, type) and issubclass(item, BaseModel):
        return _fixed_key_count(item)
    return None


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_scalar(annotation: Any) -> bool:
    """Whether every value of this type is a JSON scalar (it holds no key)."""
    annotation = _unannotated(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return all(_is_scalar(arg) for arg in get_args(annotation))
    if origin is Literal:
        return True
    return isinstance(annotation, type) and issubclass(annotation, _SCALARS)
