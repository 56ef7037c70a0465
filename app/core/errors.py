"""The one error contract: `ApiError`, and one renderer that picks the shape from the path.

Outside /v2 an error answer is `ErrorResponse`: a one-line `message` naming each field and the
rule it broke, and a `detail` list of {loc, msg, type} in FastAPI's style. Under /v2 it is the
Open Inference Protocol's `{"error": message}`, with 400 where the native API says 422. The
routes, the middleware and the edge all render through here, so the shapes cannot drift apart.

Input values are never echoed back: they may be huge, and a NaN among them could not be written
as JSON anyway.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pydantic_core
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Scope

from app.core.request_id import HEADER as REQUEST_ID_HEADER
from app.core.request_id import current_request_id
from app.observability import prometheus as telemetry

V2_PREFIX: Final = "/v2"
# The protocol's status where the native API's differs: it has no 422.
_V2_STATUS: Final = {422: 400}
MAX_DETAIL: Final = 100  # error items kept in one answer
MAX_IN_MESSAGE: Final = 5  # of which named in the one-line message
JSON_MEDIA_TYPE: Final = "application/json"


class _ErrorModel(BaseModel):
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class ErrorItem(_ErrorModel):
    loc: list[str | int] = Field(description='Where the problem is, e.g. ["body", "mitoses"].')
    msg: str = Field(description="The rule that was broken.")
    type: str = Field(description="Machine-readable error kind.")


class ErrorResponse(_ErrorModel):
    """Every 4xx and 5xx answer outside /v2 has this shape."""

    message: str = Field(description="One line naming each field and the rule it broke.")
    detail: list[ErrorItem]


# Where the problem lies, for errors Starlette or FastAPI raise with a bare status code.
_LOCATION_BY_STATUS: Final[dict[int, tuple[list[str | int], str]]] = {
    404: (["path"], "not_found"),
    405: (["method"], "method_not_allowed"),
    413: (["body"], "body_too_large"),
    415: (["header", "Content-Type"], "unsupported_media_type"),
}


class ApiError(HTTPException):
    """An HTTP error that says where the problem is (`loc`) and what kind it is (`kind`)."""

    def __init__(
        self,
        status_code: int,
        loc: Sequence[str | int],
        msg: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=msg, headers=headers)
        self.loc = list(loc)
        self.kind = kind

    def item(self) -> ErrorItem:
        return ErrorItem(loc=self.loc, msg=str(self.detail), type=self.kind)


def duplicate_key_error(path: Sequence[str | int]) -> ApiError:
    """The 422 for a JSON body that repeats the key at `path` (see app/api/json_strict.py)."""
    msg = "Key appears more than once in its object; each key must appear once"
    return ApiError(422, ["body", *path], msg, "duplicate_key")


def _printable(part: str | int) -> str:
    """A loc part for the one-line message: names from the request (an unknown field, a query
    parameter) may hold line breaks or other control characters, shown escaped."""
    text = str(part)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def under_prefix(path: str, prefix: str, root_path: str = "") -> bool:
    """Whether `path` (with `root_path` in front of it, or not) is `prefix` or below it."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path == prefix or path.startswith(prefix + "/")


def is_v2(scope: Scope) -> bool:
    """Whether the request is the Open Inference Protocol's, so its errors take that shape."""
    return under_prefix(scope.get("path", ""), V2_PREFIX, scope.get("root_path", ""))


def error_message(items: Sequence[ErrorItem], total: int | None = None) -> str:
    """The one-line message of an error answer: each item's loc and msg, the first few, then
    how many more of `total` (default: len(items)) there are."""
    total = len(items) if total is None else total
    named = [
        f"{'.'.join(map(_printable, item.loc))}: {item.msg}" for item in items[:MAX_IN_MESSAGE]
    ]
    if total > MAX_IN_MESSAGE:
        named.append(f"and {total - MAX_IN_MESSAGE} more")
    return "; ".join(named)


def error_body(items: Sequence[ErrorItem], total: int | None = None) -> bytes:
    body = ErrorResponse(message=error_message(items, total), detail=list(items[:MAX_DETAIL]))
    return body.model_dump_json().encode()


def protocol_error_body(message: str) -> bytes:
    """The Open Inference Protocol's error answer: `{"error": message}`."""
    return pydantic_core.to_json({"error": message})


def v2_status(status: int) -> int:
    return _V2_STATUS.get(status, status)


def error_response(
    status_code: int,
    items: Sequence[ErrorItem],
    headers: Mapping[str, str] | None = None,
    *,
    scope: Scope | None = None,
    total: int | None = None,
) -> Response:
    """The error answer for `items` in the shape of the request's path (`scope`; native when
    None); `total` counts the problems when `items` holds only the first MAX_DETAIL."""
    if scope is not None and is_v2(scope):
        return v2_error_response(status_code, error_message(items, total), headers)
    telemetry.note_error(items[0].type if items else "unknown")  # counted once it is sent
    body = error_body(items, total)
    return Response(body, status_code, headers, media_type=JSON_MEDIA_TYPE)


def v2_error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The protocol's error answer; a native 422 becomes the protocol's 400."""
    status = v2_status(status)
    telemetry.note_error("v2_error")  # counted once it is sent
    return Response(protocol_error_body(message), status, headers, media_type=JSON_MEDIA_TYPE)


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters ignored (as FastAPI does)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


# Plainer words for pydantic messages that speak of Python rather than JSON.
_PLAIN_MESSAGES: Final = {
    "model_attributes_type": "Input should be a JSON object",
    "dict_type": "Input should be a JSON object",
}
# FastAPI raises a bare 400 only when the JSON parser fails on something other than syntax.
_BODY_UNPARSABLE: Final = "Invalid JSON: not UTF-8 text, or nested too deep"


def error_item(error: dict[str, Any]) -> ErrorItem:
    """One pydantic or FastAPI validation error as the service words it (its input dropped)."""
    kind = str(error.get("type", "value_error"))
    msg = _PLAIN_MESSAGES.get(kind) or str(error.get("msg", "invalid"))
    context = error.get("ctx") or {}
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    if loc == ["body"] and kind == "missing":
        msg = "A JSON request body is required"
    if kind == "too_long" and {"field_type", "max_length", "actual_length"} <= set(context):
        # pydantic says "... at most N items after validation, not M"; the count is the input's
        most, given = context["max_length"], context["actual_length"]
        msg = f"{context['field_type']} should have at most {most} items, not {given}"
    if kind == "json_invalid" and isinstance(context.get("error"), str):
        # FastAPI puts the character offset after "body" in loc
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        msg = f"Invalid JSON{where}: {context['error']}"
    return ErrorItem(loc=loc, msg=msg, type=kind)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if is_v2(request.scope):
        return v2_error_response(400, "the request breaks the protocol's rules")
    errors = exc.errors()
    about_body = any(error.get("loc", ())[:1] == ("body",) for error in errors)
    content_type = request.headers.get("content-type")
    # FastAPI hands a body that is not declared JSON to validation as raw bytes; name the real
    # problem, the media type, rather than "Input should be a valid dictionary".
    if about_body and (
        (content_type is not None and not is_json_media_type(content_type))
        or isinstance(exc.body, bytes | bytearray)
    ):
        given = f"got {content_type!r}" if content_type else "none was given"
        msg = f"Content-Type must be {JSON_MEDIA_TYPE} ({given})"
        item = ErrorItem(loc=["header", "Content-Type"], msg=msg, type="unsupported_media_type")
        return error_response(415, [item])
    # Only the errors the answer lists are worded: a body can hold tens of thousands.
    items = [error_item(error) for error in errors[:MAX_DETAIL]]
    return error_response(422, items, total=len(errors))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if is_v2(request.scope):
        return v2_error_response(exc.status_code, _v2_message(exc), exc.headers)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, [exc.item()], headers=exc.headers)
    if exc.status_code == 400:
        # FastAPI's one bare 400: the JSON parser failed on bytes, not syntax. Answer as for any
        # other invalid JSON, so every unparsable body gets the same status.
        item = ErrorItem(loc=["body"], msg=_BODY_UNPARSABLE, type="json_invalid")
        return error_response(422, [item], headers=exc.headers)
    loc, kind = _LOCATION_BY_STATUS.get(exc.status_code, (["request"], "http_error"))
    item = ErrorItem(loc=loc, msg=str(exc.detail), type=kind)
    return error_response(exc.status_code, [item], headers=exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so the server still logs the traceback.
    # Starlette sends this answer outside every middleware, so it adds the request id itself.
    item = ErrorItem(loc=["server"], msg="Internal server error", type="internal_error")
    request_id = current_request_id()
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    if is_v2(request.scope):
        return v2_error_response(500, "internal server error", headers)
    return error_response(500, [item], headers)


def _v2_message(exc: HTTPException) -> str:
    if exc.status_code == 404 and not isinstance(exc, ApiError):
        return "no such /v2 endpoint"
    return str(exc.detail)


async def client_left_handler(request: Request, exc: Exception) -> Response:
    """The client left while its request was being read (Starlette's ClientDisconnect): no
    one reads this answer, the access log and the metrics say 499 (app/observability/answered.py),
    and
    it is not the service's fault, so no traceback (uvicorn logs one for an exception that
    leaves the app)."""
    return Response(status_code=telemetry.CLIENT_CLOSED)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, client_left_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
