"""Open Inference Protocol (V2) infer requests and responses, with the binary tensor extension.

A request is a JSON object, optionally followed by binary tensors: then the header
`Inference-Header-Content-Length` gives the JSON's length, and each binary input's
`parameters.binary_data_size` its bytes, in input order (Triton's binary tensor data extension).

Inputs come in one of two layouts:

- one tensor `scores` of shape [n, 9], the nine scores in the feature order, row-major;
- nine tensors of shape [n], one per feature, named by feature (MLServer's pandas codec).

Datatypes INT8..INT64, UINT8..UINT64, FP32 and FP64; every value must be a whole number from 1
to 10. JSON data may be flat or nested as the shape. Checks run on NumPy arrays, a few passes
per tensor rather than one Python object per value: that is what makes a tensor cheap to read.
Binary tensors are read as they arrive (`decode_header`, then `PendingRequest.feed` chunk by
chunk), into a matrix of one byte a score: the body is never held whole.

Every problem raises `V2Error` with a one-line message naming the input (by position, and by
name when it is one of the model's), the element index or the rule. Input values are never
echoed: only names this server defines, and keys that look like identifiers.
"""

import array
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, Final, NamedTuple

import jiter
import numpy as np
import pydantic_core
from numpy.typing import NDArray

from app.core.dataplane import Scored
from app.monitoring.decision import DECISIONS
from model.features import CLASS_NAMES, FEATURE_NAMES, N_FEATURES, SCORE_MAX, SCORE_MIN

SCORES_INPUT: Final = "scores"
PROBABILITY_OUTPUT: Final = "probability"
CLASS_OUTPUT: Final = "class"
DECISION_OUTPUT: Final = "decision"
OUTPUT_NAMES: Final = (PROBABILITY_OUTPUT, CLASS_OUTPUT, DECISION_OUTPUT)
# What a request naming no outputs gets: the decision, which costs a typicality check of every
# row, only when asked for, so that clients reading binary outputs by position keep theirs.
DEFAULT_OUTPUTS: Final = (PROBABILITY_OUTPUT, CLASS_OUTPUT)
HEADER_LENGTH: Final = "inference-header-content-length"
THRESHOLD: Final = "threshold"

# Little-endian NumPy types of the datatypes an input may have (the binary extension's byte order).
DATATYPES: Final[Mapping[str, np.dtype[Any]]] = {
    name: np.dtype(code)
    for name, code in (
        ("INT8", "i1"),
        ("INT16", "<i2"),
        ("INT32", "<i4"),
        ("INT64", "<i8"),
        ("UINT8", "u1"),
        ("UINT16", "<u2"),
        ("UINT32", "<u4"),
        ("UINT64", "<u8"),
        ("FP32", "<f4"),
        ("FP64", "<f8"),
    )
}
_DATATYPE_LIST: Final = ", ".join(DATATYPES)
_REQUEST_KEYS: Final = frozenset(
    {"id", "model_name", "model_version", "parameters", "inputs", "outputs"}
)
_INPUT_KEYS: Final = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS: Final = frozenset({"name", "parameters"})
# Extensions this server does not implement: a request relying on one must not get answers that
# silently ignore it.
_UNSUPPORTED_PARAMETERS: Final = ("shared_memory_region", "classification")
_PRINTABLE_KEY: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_JSON_SPACE: Final = b" \t\r\n"
# What a JSON header may hold, counted as characters (in strings too) before it is parsed: each
# object, key and array costs jiter and Python far more than its few bytes (an 8 MiB body of
# 800,000 keys took 1.1 s, of 2.8 million empty arrays 1.0 s, against 0.03 s for the largest
# valid tensor). A valid request has at most 24 objects and a few dozen keys besides its
# parameters'; its arrays are its tensors' rows, when nested, and a dozen more.
_MAX_OBJECTS: Final = 64  # "{"
_MAX_KEYS: Final = 1024  # ":"
_ARRAYS_BESIDE_ROWS: Final = 64  # "[" beyond V2_MAX_ROWS
# `true` and `false` words checked one by one for being in an array; more answer "maybe", and
# the exact check over the values decides. Whitespace is looked back over this far at most.
_BOOLEAN_WORDS: Final = 16
_LOOK_BACK: Final = 64
_MAX_DIMENSIONS: Final = 2
_SMALL_TENSOR: Final = 256  # values
_VALUE_RULE: Final = f"a whole number from {SCORE_MIN} to {SCORE_MAX}"
_NO_ROWS: Final = np.empty((0, N_FEATURES), dtype=np.uint8)


class V2Error(ValueError):
    """A request the protocol's rules or the model's refuse; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RequestedOutput(NamedTuple):
    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    rows: NDArray[np.uint8]  # (n, 9), validated: whole numbers 1..10 in the feature order
    threshold: float | None
    outputs: tuple[RequestedOutput, ...]
    id: str | None

    def without_rows(self) -> "InferRequest":
        """The request for `encode_response`, which needs no rows: dropping them frees their
        memory (0.9 MB at 100,000 rows) before the answer is built."""
        return InferRequest(_NO_ROWS, self.threshold, self.outputs, self.id)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A response body, and its JSON header's length when binary tensors follow the JSON."""

    body: bytes
    header_length: int | None


# -- requests ---------------------------------------------------------------------------------
def decode_request(
    body: bytes,
    header_length: str | None,
    *,
    model_name: str,
    model_version: str,
    max_rows: int,
) -> InferRequest:
    """The validated request in `body`, whole; `header_length` is the
    Inference-Header-Content-Length header's value, if it was sent."""
    json_end = len(body) if header_length is None else json_length(header_length, len(body))
    header = body if json_end == len(body) else body[:json_end]
    decoded = decode_header(
        header,
        len(body),
        model_name=model_name,
        model_version=model_version,
        max_rows=max_rows,
    )
    decoded.feed(memoryview(body)[json_end:])
    return decoded.finish()


def json_length(header_length: str, body_length: int | None) -> int:
    """The JSON header's length in bytes: the Inference-Header-Content-Length header's value,
    once it is a whole number from 1 to the body's length (if known)."""
    value = header_length.strip()
    if not value.isdigit() or not value.isascii():
        raise V2Error("Inference-Header-Content-Length must be a whole number of bytes")
    length = int(value)
    if length == 0 or (body_length is not None and length > body_length):
        raise header_past_body(body_length)
    return length


def header_past_body(body_length: int | None) -> V2Error:
    size = "" if body_length is None else f" ({body_length} bytes)"
    return V2Error(
        f"Inference-Header-Content-Length must be from 1 to the body's length{size}: the JSON "
        "header cannot end past the body"
    )


def decode_header(
    header: bytes,
    body_length: int | None,
    *,
    model_name: str,
    model_version: str,
    max_rows: int,
) -> "PendingRequest":
    """The request's JSON header, validated, with its JSON tensors read: what remains is to feed
    it the bytes after the header (`PendingRequest.feed`). `body_length` is the whole body's
    length if known, so that binary sizes that do not add up are refused before any is read."""
    request = _parse_json(header, max_rows)
    if not isinstance(request, dict):
        raise V2Error("the inference request must be a JSON object")
    _only_keys(request, _REQUEST_KEYS, "the inference request")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error("id must be a string")
    _same_as_url(request, "model_name", model_name)
    _same_as_url(request, "model_version", model_version)
    parameters = _parameters(request.get("parameters"), "parameters")
    threshold = _threshold(parameters)
    binary_default = _flag(parameters, "binary_data_output", "parameters")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error("inputs must be a non-empty list of input tensors")
    tensors = [_tensor(i, item) for i, item in enumerate(inputs)]
    n = _layout(tensors, max_rows)
    outputs = _requested_outputs(request.get("outputs"), binary_default)
    rows = np.empty((n, N_FEATURES), dtype=np.uint8)  # one byte a score, whatever the datatype
    pending = PendingRequest(InferRequest(rows, threshold, outputs, request_id))
    for tensor in tensors:
        pending.add(tensor, header)
    if body_length is not None:
        pending.check_sizes(body_length - len(header))
    return pending


def _parse_json(text: bytes, max_rows: int) -> Any:
    if not text.strip():
        raise V2Error("the request body is empty: expected a JSON inference request")
    _check_structure(text, max_rows)
    try:
        return jiter.from_json(text, allow_inf_nan=False, catch_duplicate_keys=True)
    except ValueError as exc:
        message = str(exc)
        where = re.search(r"at line \d+ column \d+", message)
        at = f" {where.group(0)}" if where else ""
        if message.startswith("Detected duplicate key"):
            raise V2Error(f"the JSON header repeats a key in one object{at}") from None
        # jiter's messages name the JSON rule and the position, never the text itself.
        raise V2Error(f"the JSON header is not valid JSON: {message}") from None


def _check_structure(text: bytes, max_rows: int) -> None:
    """Refuse a JSON header with more objects, keys or arrays than a request can need, counted
    by bytes.count (C, a fraction of a nanosecond a byte) before any is built."""
    limits = (
        (b"{", _MAX_OBJECTS, "objects ('{')"),
        (b":", _MAX_KEYS, "keys (':')"),
        (b"[", max_rows + _ARRAYS_BESIDE_ROWS, "arrays ('[')"),
    )
    for char, limit, what in limits:
        count = text.count(char)
        if count > limit:
            raise V2Error(
                f"the JSON header holds {count} {what}, strings included; an inference request "
                f"holds at most {limit}"
            )


def _only_keys(obj: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = obj.keys() - allowed
    if unknown:
        key = min(unknown)
        named = repr(key) if _PRINTABLE_KEY.fullmatch(key) else "a key"
        expected = ", ".join(sorted(allowed))
        raise V2Error(f"{what} has unknown field {named}; its fields are {expected}")


def _same_as_url(request: Mapping[str, Any], key: str, served: str) -> None:
    if key in request and request[key] != served:
        raise V2Error(f"{key} in the body must be the one in the URL ({served!r}) or be left out")


def _parameters(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise V2Error(f"{where} must be a JSON object")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            named = repr(key) if _PRINTABLE_KEY.fullmatch(key) else "a parameter"
            raise V2Error(f"{where}: {named} must be a string, a number or a boolean")
        if key in _UNSUPPORTED_PARAMETERS:
            raise V2Error(f"{where}: {key!r} (an extension this server lacks) is not supported")
    return value


def _threshold(parameters: Mapping[str, Any]) -> float | None:
    value = parameters.get(THRESHOLD)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise V2Error("parameters.threshold must be a number from 0 to 1")
    return float(value) + 0.0  # -0.0 is 0.0, as on the native routes


def _flag(parameters: Mapping[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise V2Error(f"{where}.{key} must be true or false")
    return value


class _Tensor(NamedTuple):
    where: str  # "inputs[0] ('scores')", for messages
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    data: object  # the JSON data, or None for a binary tensor
    binary_size: int | None


def _tensor(index: int, item: object) -> _Tensor:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise V2Error(f"{where} must be a JSON object")
    _only_keys(item, _INPUT_KEYS, where)
    name = item.get("name")
    if not isinstance(name, str):
        raise V2Error(f"{where}.name must be a string")
    if name != SCORES_INPUT and name not in FEATURE_NAMES:
        raise V2Error(
            f"{where} is not an input of this model: send one tensor {SCORES_INPUT!r} of shape "
            "[n, 9], or nine tensors of shape [n] named by feature (see GET /v2/models/{name})"
        )
    where = f"{where} ({name!r})"
    shape = item.get("shape")
    if isinstance(shape, list) and len(shape) > _MAX_DIMENSIONS:
        raise V2Error(f"{where}.shape has {len(shape)} dimensions: [n, 9] or [n] are expected")
    if not (
        isinstance(shape, list)
        and all(type(d) is int and 0 <= d < 2**63 for d in shape)  # bool is no dimension
    ):
        raise V2Error(f"{where}.shape must be a list of non-negative integers")
    datatype = item.get("datatype")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise V2Error(f"{where}.datatype must be one of {_DATATYPE_LIST}")
    parameters = _parameters(item.get("parameters"), f"{where}.parameters")
    binary_size = parameters.get("binary_data_size")
    if binary_size is not None and (type(binary_size) is not int or binary_size < 0):
        raise V2Error(f"{where}.parameters.binary_data_size must be a non-negative integer")
    data = item.get("data")
    if (data is None) == (binary_size is None):
        raise V2Error(f"{where} must have either data or parameters.binary_data_size, not both")
    return _Tensor(where, name, tuple(shape), dtype, data, binary_size)


def _layout(tensors: Sequence[_Tensor], max_rows: int) -> int:
    """The number of rows, once the inputs are one of the two layouts with consistent shapes."""
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise V2Error("inputs name the same tensor twice")
    n = _scores_rows(tensors) if SCORES_INPUT in names else _feature_rows(tensors, names)
    if n == 0:
        raise V2Error("inputs hold no rows: n must be at least 1")
    if n > max_rows:
        raise V2Error(f"inputs hold {n} rows; at most {max_rows} are allowed (V2_MAX_ROWS)")
    return n


def _scores_rows(tensors: Sequence[_Tensor]) -> int:
    """The rows of the one-tensor layout, once `scores` is alone and of shape [n, 9]."""
    if len(tensors) > 1:
        raise V2Error(
            f"inputs mix layouts: send either one tensor {SCORES_INPUT!r} or nine tensors "
            "named by feature"
        )
    (scores,) = tensors
    if len(scores.shape) != 2 or scores.shape[1] != N_FEATURES:
        raise V2Error(f"{scores.where}.shape must be [n, {N_FEATURES}]")
    return scores.shape[0]


def _feature_rows(tensors: Sequence[_Tensor], names: Sequence[str]) -> int:
    """The rows of the nine-tensor layout, once every feature has a tensor, all of shape [n]."""
    missing = [name for name in FEATURE_NAMES if name not in names]
    if missing:
        raise V2Error(f"inputs lack the feature tensor(s) {', '.join(map(repr, missing))}")
    for tensor in tensors:
        if len(tensor.shape) != 1:
            raise V2Error(f"{tensor.where}.shape must be [n]")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise V2Error("the nine feature tensors must have the same shape [n]")
    return n


def _target(rows: NDArray[np.uint8], tensor: _Tensor) -> NDArray[np.uint8]:
    """Where `tensor`'s values go, flat and in its element order: the whole matrix for
    `scores`, a feature's column for a feature tensor."""
    if tensor.name == SCORES_INPUT:
        return rows.reshape(-1)
    return rows[:, FEATURE_NAMES.index(tensor.name)]


class PendingRequest:
    """A request whose header is read, filled with its binary tensors as their bytes arrive.

    The body is never held whole: each chunk is checked and converted into the score matrix
    (one byte a score) as it comes, carrying over at most one value split across two chunks.
    A 100,000-row INT64 body is 7.2 MB; the matrix it fills is 0.9 MB.
    """

    def __init__(self, request: InferRequest) -> None:
        self.request = request
        self._binary: list[_BinaryInput] = []
        self._current = 0  # index in _binary of the input the next bytes belong to
        self._carry = b""  # the first bytes of a value the next chunk completes
        self._extra = 0  # bytes after the last binary input's

    def add(self, tensor: _Tensor, header: bytes) -> None:
        """Read `tensor` if its data is in the JSON; else expect its bytes, in input order."""
        target = _target(self.request.rows, tensor)
        if tensor.binary_size is None:
            target[:] = _json_values(tensor, header)
            return
        expected = target.size * tensor.dtype.itemsize
        if tensor.binary_size != expected:
            raise V2Error(
                f"{tensor.where}.parameters.binary_data_size is {tensor.binary_size} bytes; its "
                f"shape and datatype need {expected}"
            )
        self._binary.append(_BinaryInput(tensor, target))

    def check_sizes(self, after_header: int) -> None:
        """Refuse binary sizes that do not add up to the `after_header` bytes of the body."""
        total = 0
        for binary in self._binary:
            total += binary.target.size * binary.tensor.dtype.itemsize
            if total > after_header:
                raise _ends_early(binary.tensor)
        if total != after_header:
            raise _left_over(after_header - total)

    def feed(self, chunk: bytes | memoryview) -> None:
        """Check and convert the binary inputs' values in the next bytes of the body."""
        data = memoryview(chunk).cast("B")
        while data:
            if self._current == len(self._binary):
                self._extra += len(data)
                return
            binary = self._binary[self._current]
            item = binary.tensor.dtype.itemsize
            if self._carry:
                take = item - len(self._carry)
                self._carry += bytes(data[:take])
                data = data[take:]
                if len(self._carry) < item:
                    return
                binary.write(self._carry)
                self._carry = b""
            left = (binary.target.size - binary.filled) * item
            whole = min(len(data), left) // item * item
            binary.write(data[:whole])
            data = data[whole:]
            if binary.filled == binary.target.size:
                self._current += 1
            elif data and len(data) < item:
                self._carry = bytes(data)
                return

    def finish(self) -> InferRequest:
        """The request, once the body has ended where its binary inputs do."""
        if self._current < len(self._binary):
            raise _ends_early(self._binary[self._current].tensor)
        if self._extra:
            raise _left_over(self._extra)
        return self.request


@dataclass(slots=True)
class _BinaryInput:
    tensor: _Tensor
    target: NDArray[np.uint8]  # where its values go: the score matrix, or one of its columns
    filled: int = 0

    def write(self, raw: bytes | memoryview) -> None:
        if not raw:
            return
        values = np.frombuffer(raw, self.tensor.dtype)
        end = self.filled + len(values)
        self.target[self.filled : end] = _checked(self.tensor, values, self.filled)
        self.filled = end


def _ends_early(tensor: _Tensor) -> V2Error:
    return V2Error(
        f"{tensor.where}: the body ends before its binary data does (the sizes of the binary "
        "inputs add up to more than the bytes after the JSON header)"
    )


def _left_over(extra: int) -> V2Error:
    return V2Error(
        f"the body has {extra} bytes after the JSON header and the binary inputs that no "
        "input's binary_data_size accounts for"
    )


def _json_values(tensor: _Tensor, header: bytes) -> NDArray[Any] | bytearray:
    """The tensor's JSON data, flat, once its length or nesting fits the shape and it holds only
    whole numbers 1..10."""
    flat = _flat_data(tensor, header)
    try:
        # bytearray takes Python ints 0..255 only (no float, string or null; booleans are
        # refused by _flat_data), converting a list at C speed: the common case, where every
        # score is 1..10. 90,000 values took 0.45 ms, against 1.9 to 3.5 ms with array("q") and
        # 2.4 ms with np.array(dtype=int64); tests/unit/v2/test_fast_paths.py guards it.
        ints = bytearray(flat)
    except (TypeError, ValueError):
        pass
    else:
        # A few values are checked by Python's min and max and copied into the rows as they
        # are, with no NumPy call (each costs a request far more than its own time: see
        # model/scoring/single_row.py); many, by NumPy's reductions.
        if len(ints) <= _SMALL_TENSOR and min(ints) >= SCORE_MIN and max(ints) <= SCORE_MAX:
            return ints
        return _checked(tensor, np.frombuffer(ints, dtype=np.uint8))
    return _checked(tensor, _numbers(tensor, flat))


def _flat_data(tensor: _Tensor, header: bytes) -> list[Any]:
    """The tensor's JSON data, flat, once it is a list whose length or nesting fits the shape and
    that holds no boolean."""
    data = tensor.data
    if not isinstance(data, list):
        raise V2Error(f"{tensor.where}.data must be a list")
    flat = _flattened(tensor, data)
    size = prod(tensor.shape)
    if len(flat) != size:
        raise V2Error(f"{tensor.where}.data has {len(flat)} values; its shape needs {size}")
    # A JSON boolean in an array follows "[" or ","; JSON true is Python's True, which the
    # conversions in _json_values read as the integer 1. Only such a body pays for the exact
    # check.
    if _array_boolean(header) and bool in set(map(type, flat)):
        raise V2Error(f"{tensor.where}.data must hold only numbers, not booleans")
    return flat


def _numbers(tensor: _Tensor, flat: list[Any]) -> NDArray[Any]:
    """The values that bytearray refused, as int64 when they are integers, else as float64
    once they are all numbers: the caller's _checked names any outside 1..10."""
    try:  # larger or negative integers
        return np.frombuffer(array.array("q", flat), dtype=np.int64)
    except (TypeError, OverflowError):
        pass
    if not set(map(type, flat)) <= {int, float}:
        raise V2Error(
            f"{tensor.where}.data must hold only numbers (no strings, booleans, nulls or lists)"
        )
    try:
        return np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer too large for a float: far outside 1..10
        raise V2Error(f"{tensor.where}.data holds a number that is not {_VALUE_RULE}") from None


def _array_boolean(header: bytes) -> bool:
    """Whether the JSON text may hold a boolean inside an array (it may also be in a string).

    A JSON request rarely holds `true` or `false` (tritonclient's `"binary_data": false`), so a
    few are looked at each: after "[" or ",", whitespace between, it may be a value. Many, or
    one after more than _LOOK_BACK bytes of whitespace, answer True: the caller's exact check
    is C-level, so crafted text costs no Python step per byte or per word."""
    if header.count(b"true") + header.count(b"false") > _BOOLEAN_WORDS:
        return True
    for word in (b"true", b"false"):
        found = header.find(word)
        while found != -1:
            before = header[max(0, found - _LOOK_BACK) : found].rstrip(_JSON_SPACE)
            if not before or before[-1] in b"[,":
                return True
            found = header.find(word, found + 1)
    return False


def _flattened(tensor: _Tensor, data: list[Any]) -> list[Any]:
    """`data` itself when flat; the rows of a nested [n, 9] list concatenated, once each row is
    a list of the shape's width."""
    if not data or type(data[0]) is not list:
        return data  # flat; a list among the values is refused as not a number
    shape = tensor.shape
    if not (
        len(shape) == 2
        and len(data) == shape[0]
        and all(type(row) is list and len(row) == shape[1] for row in data)
    ):
        raise V2Error(
            f"{tensor.where}.data must be flat, or nested as its shape (rows of equal length)"
        )
    return list(itertools.chain.from_iterable(data))


def _checked(tensor: _Tensor, array: NDArray[Any], offset: int = 0) -> NDArray[Any]:
    """`array` when every value is a whole number 1..10; else a V2Error naming the first that
    is not (`array` starts at element `offset` of the tensor)."""
    in_range = array.size and array.min() >= SCORE_MIN and array.max() <= SCORE_MAX  # NaN: False
    if in_range and (array.dtype.kind != "f" or np.array_equal(array, np.floor(array))):
        return array
    with np.errstate(invalid="ignore"):
        bad = (array < SCORE_MIN) | (array > SCORE_MAX) | ~np.isfinite(array)
        if array.dtype.kind == "f":
            bad |= np.floor(array) != array
    index = offset + int(np.flatnonzero(bad)[0])
    if tensor.name == SCORES_INPUT:
        row, column = divmod(index, N_FEATURES)
        place = f"element {index} (row {row}, {FEATURE_NAMES[column]})"
    else:
        place = f"element {index}"
    raise V2Error(f"{tensor.where}: {place} must be {_VALUE_RULE}")


# Both outputs, as JSON and as binary tensors: what a request without `outputs` asks for.
_ALL_OUTPUTS: Final = {
    binary: tuple(RequestedOutput(name, binary) for name in DEFAULT_OUTPUTS)
    for binary in (False, True)
}


def _requested_outputs(value: object, binary_default: bool) -> tuple[RequestedOutput, ...]:
    if value is None:
        return _ALL_OUTPUTS[binary_default]
    if not isinstance(value, list):
        raise V2Error("outputs must be a list of requested outputs")
    outputs = []
    for i, item in enumerate(value):
        where = f"outputs[{i}]"
        if not isinstance(item, dict):
            raise V2Error(f"{where} must be a JSON object")
        _only_keys(item, _OUTPUT_KEYS, where)
        name = item.get("name")
        if name not in OUTPUT_NAMES:
            raise V2Error(f"{where}.name must be one of {', '.join(map(repr, OUTPUT_NAMES))}")
        parameters = _parameters(item.get("parameters"), f"{where}.parameters")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise V2Error(f"{where}.parameters.binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary))
    if len({o.name for o in outputs}) != len(outputs):
        raise V2Error("outputs name the same output twice")
    return tuple(outputs)


# -- responses ---------------------------------------------------------------------------------
def wants_decisions(request: InferRequest) -> bool:
    return any(output.name == DECISION_OUTPUT for output in request.outputs)


def encode_response(
    scored: Scored,
    request: InferRequest,
    *,
    model_name: str,
    model_version: str,
    decisions: NDArray[np.uint8] | None = None,
) -> Encoded:
    """The inference response: JSON, followed by the binary outputs (in output order) if any
    output was asked for as binary.

    The JSON is pydantic_core.to_json's of the response, byte for byte. From _SPLICED_ROWS
    rows, a JSON class tensor's data is written by `_class_run` and spliced in as the tensor's
    last field: 0.05 ms instead of 0.6 for 10,000 rows (to_json of 10,000 strings), 34% fewer
    instructions for a 10,000-row JSON request with the JSON-data change in _json_values.
    tests/unit/v2/test_fast_paths.py checks the bytes against to_json's. `decisions` (indices
    in DECISIONS) must be given when the request asks for the decision output.
    """
    tensors, binary_parts, spliced = _encode_outputs(request.outputs, scored, decisions)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        response["id"] = request.id
    response["parameters"] = {THRESHOLD: scored.threshold}
    header = _json_header(response, tensors, spliced)
    if not binary_parts:
        return Encoded(header, None)
    return Encoded(b"".join([header, *binary_parts]), len(header))


def _encode_outputs(
    requested: Sequence[RequestedOutput], scored: Scored, decisions: NDArray[np.uint8] | None
) -> tuple[list[dict[str, Any]], list[bytes], dict[int, bytes]]:
    """The outputs' tensors; the binary outputs' bytes, in output order; and the JSON data of
    the spliced tensors, by index in the tensors."""
    tensors: list[dict[str, Any]] = []
    binary_parts: list[bytes] = []
    spliced: dict[int, bytes] = {}
    for output in requested:
        encode = _OUTPUT_ENCODERS.get(output.name, _encode_class)
        tensor, data = encode(output, scored, decisions)
        if output.binary:
            tensor["parameters"] = {"binary_data_size": len(data)}
            binary_parts.append(data)
        elif data:
            spliced[len(tensors)] = data
        tensors.append(tensor)
    return tensors, binary_parts, spliced


# Each output's tensor, and its data when not in the tensor: its bytes when it is asked for as
# binary, else b"" or, for a spliced class tensor, its JSON data, written by _class_run.
_TensorAndData = tuple[dict[str, Any], bytes]


def _encode_probability(
    output: RequestedOutput, scored: Scored, decisions: NDArray[np.uint8] | None
) -> _TensorAndData:
    tensor: dict[str, Any] = {
        "name": output.name,
        "datatype": "FP64",
        "shape": [len(scored.probabilities)],
    }
    if output.binary:
        return tensor, scored.probabilities.astype("<f8", copy=False).tobytes()
    tensor["data"] = scored.probabilities.tolist()
    return tensor, b""


def _encode_decision(
    output: RequestedOutput, scored: Scored, decisions: NDArray[np.uint8] | None
) -> _TensorAndData:
    if decisions is None:
        raise ValueError("the decision output needs the decisions")
    tensor: dict[str, Any] = {
        "name": output.name,
        "datatype": "BYTES",
        "shape": [len(scored.probabilities)],
    }
    if output.binary:
        return tensor, b"".join(_DECISION_ELEMENTS[decisions].tolist())
    tensor["data"] = [DECISIONS[d] for d in decisions.tolist()]
    return tensor, b""


def _encode_class(
    output: RequestedOutput, scored: Scored, decisions: NDArray[np.uint8] | None
) -> _TensorAndData:
    n = len(scored.probabilities)
    tensor: dict[str, Any] = {"name": output.name, "datatype": "BYTES", "shape": [n]}
    if output.binary:
        return tensor, _class_run(scored.malignant, _CLASS_ELEMENT_TABLE)
    if n < _SPLICED_ROWS:
        tensor["data"] = [CLASS_NAMES[m] for m in scored.malignant.tolist()]
        return tensor, b""
    return tensor, _class_run(scored.malignant, _CLASS_JSON_TABLE)[:-1]


# Any name but these is the class output's (the request's output names are checked on decoding).
_OUTPUT_ENCODERS: Final = {
    PROBABILITY_OUTPUT: _encode_probability,
    DECISION_OUTPUT: _encode_decision,
    CLASS_OUTPUT: _encode_class,
}


def _json_header(
    response: dict[str, Any], tensors: list[dict[str, Any]], spliced: Mapping[int, bytes]
) -> bytes:
    """The response's JSON, to_json's of `response` with `tensors` as its last field, outputs;
    the tensors in `spliced` with their data spliced in as their last field."""
    if not spliced:
        response["outputs"] = tensors
        return pydantic_core.to_json(response)
    # {...,"outputs":[...]}, as to_json writes a response whose last field is outputs,
    # and a spliced tensor {...,"data":[...]}, as it writes one whose last field is data
    texts = [
        pydantic_core.to_json(t)
        if i not in spliced
        else b"".join([pydantic_core.to_json(t)[:-1], b',"data":[', spliced[i], b"]}"])
        for i, t in enumerate(tensors)
    ]
    head = pydantic_core.to_json(response)[:-1]
    return b"".join([head, b',"outputs":[', b",".join(texts), b"]}"])


def _class_table(benign: bytes, malignant: bytes) -> NDArray[np.object_]:
    """The text of every run of _CLASS_RUN rows, by their classes as bits (the first row the
    highest bit): entry 0b10000000 is `malignant` then seven `benign`."""
    elements = (benign, malignant)
    return np.array(
        [
            b"".join(elements[code >> (_CLASS_RUN - 1 - i) & 1] for i in range(_CLASS_RUN))
            for code in range(1 << _CLASS_RUN)
        ]
        + list(elements),  # entries 256 and 257: one row, for the last n % 8
        dtype=object,
    )


# Rows whose classes one table entry spells: np.packbits makes each run of 8 one index, so a
# 10,000-row class tensor is 1,250 parts to join instead of 10,000 (0.06 ms instead of 0.33),
# and 100,000 rows need 1 MB of bytes.join's per-part records instead of 9.9 MB.
_CLASS_RUN: Final = 8
# Rows from which a JSON class tensor is spliced in: fewer cost less through to_json.
_SPLICED_ROWS: Final = 64
# Each BYTES element in binary form: its length as a little-endian uint32, then its bytes; in
# JSON, the string and a comma.
_CLASS_ELEMENT_TABLE: Final = _class_table(
    *(len(name).to_bytes(4, "little") + name.encode() for name in CLASS_NAMES)
)
_CLASS_JSON_TABLE: Final = _class_table(*(f'"{name}",'.encode() for name in CLASS_NAMES))
_DECISION_ELEMENTS: Final = np.array(
    [len(name).to_bytes(4, "little") + name.encode() for name in DECISIONS], dtype=object
)


def _class_run(malignant: NDArray[np.bool_], table: NDArray[np.object_]) -> bytes:
    """The classes' elements, concatenated: runs of _CLASS_RUN rows looked up as one."""
    whole = len(malignant) - len(malignant) % _CLASS_RUN
    last = malignant[whole:].astype(np.intp) + (1 << _CLASS_RUN)
    if not whole:  # a few rows, one request of one row among them
        return b"".join(table[last].tolist())
    codes = np.packbits(malignant[:whole]).astype(np.intp)
    return b"".join(table[np.concatenate([codes, last])].tolist())
