"""The most JSON structure a valid body of a route can hold, checked before the body is parsed.

A body's cost is not its size: 1 MiB of `[]` or of distinct unknown keys sent to /predict is
parsed into some 300,000 Python objects, and validated, before it can be refused: about 160
times the CPU per byte of a valid 1,000-row batch (`python -m scripts.bench.body_cost`). A
valid body of a route's model holds at most so many objects (`{`), arrays (`[`), keys (`:`)
and values (`,`), and its strings at most so many characters, in which any of those may
appear. A body over those bounds, with a small slack so that a small invalid body still gets
the model's own words, is refused before any parsing: four `bytes.count`s, about 0.1 ms a MiB.

The bounds are worked out once per route from the body model: a model is one object and one
key per field; a list with a `max_length` that many of its items; a string its `max_length`
characters. A field with no such bound (a dict, an unbounded list or string) leaves the route
unchecked, rather than refusing valid bodies.
"""

import re
from dataclasses import astuple, dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.core.errors import ApiError

_SCALARS: Final = (int, float, bool, NoneType)
# Beyond the bounds: a small invalid body ([5] for a score) still gets the model's own words.
SLACK: Final = 64
_COUNTED: Final = "{[:,"
_ONE_CLASS: Final = re.compile(r"\^\[[^\]]+\]\+\$")


@dataclass(frozen=True, slots=True)
class Shape:
    """How many objects, arrays, keys and list items a body holds at most, and how many of the
    counted characters (`{`, `[`, `:`, `,`) its strings may hold. Commas separate keys and
    items, so a valid body has at most keys + items outside its strings."""

    objects: int = 0
    arrays: int = 0
    keys: int = 0
    items: int = 0
    text_braces: int = 0
    text_brackets: int = 0
    text_colons: int = 0
    text_commas: int = 0

    def __add__(self, other: "Shape") -> "Shape":
        return Shape(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def times(self, n: int) -> "Shape":
        return Shape(*(a * n for a in astuple(self)))

    def most(self, other: "Shape") -> "Shape":
        return Shape(*(max(a, b) for a, b in zip(astuple(self), astuple(other), strict=True)))

    def refuse_larger(self, body: bytes) -> None:
        """ApiError 422 `body_too_complex` if `body` holds more structure than this allows."""
        allowed = (
            self.objects + self.text_braces + SLACK,
            self.arrays + self.text_brackets + SLACK,
            self.keys + self.text_colons + SLACK,
            self.keys + self.items + self.text_commas + SLACK,
        )
        counted = (body.count(b"{"), body.count(b"["), body.count(b":"), body.count(b","))
        if any(n > most for n, most in zip(counted, allowed, strict=True)):
            raise ApiError(
                422,
                ["body"],
                "The body holds more JSON objects, arrays, keys or values than any valid request "
                f"to this route (at most {allowed[0]} '{{', {allowed[1]} '[', {allowed[2]} ':' "
                f"and {allowed[3]} ',', counting those in strings)",
                "body_too_complex",
            )


def largest_shape(model: type[BaseModel]) -> Shape | None:
    """The most structure a valid body of `model` holds; None when nothing bounds it."""
    return _model(model)


def _model(model: type[BaseModel]) -> Shape | None:
    shape = Shape(objects=1, keys=len(model.model_fields))
    for field in model.model_fields.values():
        inner = _annotation(field.annotation, field.metadata)
        if inner is None:
            return None
        shape += inner
    return shape


def _annotation(annotation: Any, metadata: list[Any]) -> Shape | None:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        more = [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
        return _annotation(base, [*metadata, *more])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model(annotation)
    if origin in (Union, UnionType):
        shapes = [_annotation(arg, metadata) for arg in get_args(annotation)]
        if any(s is None for s in shapes):
            return None
        found = Shape()
        for s in shapes:
            found = found.most(s)  # type: ignore[arg-type]
        return found
    if origin is list:
        (item,) = get_args(annotation)
        inner, n = _annotation(item, []), _max_length(metadata)
        return None if inner is None or n is None else Shape(arrays=1, items=n) + inner.times(n)
    if annotation is str:
        n = _max_length(metadata)
        return None if n is None else _text(n, _pattern(metadata))
    if origin is Literal or annotation in _SCALARS:
        literals = [str(a) for a in get_args(annotation)]
        return Shape(
            0, 0, 0, 0, *(max((t.count(c) for t in literals), default=0) for c in _COUNTED)
        )
    return None


def _text(length: int, pattern: str | None) -> Shape:
    """A string of at most `length` characters, each of the counted ones only if `pattern`
    (which every character of the string must match) lets it in."""
    may = [pattern is None or re.fullmatch(pattern, c) is not None for c in _COUNTED]
    return Shape(0, 0, 0, 0, *(length if allowed else 0 for allowed in may))


def _pattern(metadata: list[Any]) -> str | None:
    """The pattern of a string made of one repeated character class, such as `^[a-z]+$`: a
    single character matches it exactly when it may appear in the string. Any other pattern is
    None (every character may appear)."""
    for m in metadata:
        pattern = getattr(m, "pattern", None)
        if isinstance(pattern, str) and _ONE_CLASS.fullmatch(pattern):
            return pattern
    return None


def _max_length(metadata: list[Any]) -> int | None:
    lengths = [m.max_length for m in metadata if getattr(m, "max_length", None) is not None]
    return min(lengths) if lengths else None
