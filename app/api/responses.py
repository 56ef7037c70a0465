"""The error responses the OpenAPI document lists for each kind of route, their examples, and
`json_response`.

Each error example is the body the service really sends, written by the same code
(`error_body`, the errors the guard and the body limit raise); tests/system/api/test_openapi.py
sends the
request each one describes to a live server and compares the answers byte for byte.
"""

import json
from collections.abc import Mapping
from typing import Any, Final

from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.api.deps import api_key_error
from app.api.schemas import ErrorItem, ErrorResponse
from app.core.errors import JSON_MEDIA_TYPE, ApiError, error_body, error_item
from app.core.recording import invalid_case_reference, record_unavailable
from app.middleware.body_limit import BodyTooLargeError
from app.openapi.document import Example, ExampleContext, SourcesByStatus

Responses = dict[int | str, dict[str, Any]]


def error_doc(description: str) -> dict[str, Any]:
    """An error response of the OpenAPI document: the JSON error shape, described."""
    return {"model": ErrorResponse, "description": description}


BODY_ERRORS: Final[Responses] = {
    413: error_doc("The request body is larger than MAX_BODY_BYTES (1 MiB by default)."),
    415: error_doc(
        "The body is not sent as application/json, or is compressed (Content-Encoding)."
    ),
    422: error_doc(
        "The body is not valid JSON, repeats a key, or breaks a rule; `message` names field and "
        "rule."
    ),
}
QUERY_ERRORS: Final[Responses] = {
    422: error_doc("A query parameter breaks a rule; `message` names it and the rule."),
}
RECORD_ERRORS: Final[Responses] = {
    400: error_doc(
        "X-Case-Reference is not 1 to 128 characters of letters, digits and ._:/+=@- "
        "(`invalid_case_reference`)."
    ),
    503: error_doc(
        "The answer's record cannot be written (`record_unavailable`, with Retry-After): "
        "nothing was answered."
    ),
}
OUTCOME_STORE_ERRORS: Final[Responses] = {
    503: error_doc(
        "The record cannot be read or written (`record_unavailable`, with Retry-After), or is "
        "off (`record_off`, RECORD=false)."
    ),
}
AUTH_ERRORS: Final[Responses] = {
    401: error_doc("The X-API-Key header is missing or wrong (only when API_KEY is set)."),
}


def error_example(summary: str, *items: ErrorItem) -> Example:
    """An example of the error answer made of `items`, as `error_response` writes it."""
    return Example(summary, json.loads(error_body(items)))


def invalid_json_example(text: str) -> Example:
    """The answer to a body of `text` that is not JSON, located by the parser FastAPI uses."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"Invalid JSON at character {exc.pos}: {exc.msg}"
        return error_example(
            "Not JSON", ErrorItem(loc=["body", exc.pos], msg=msg, type="json_invalid")
        )
    raise ValueError("the text is valid JSON")


def invalid_body_example(summary: str, model: type[BaseModel], value: Any) -> Example:
    """The answer to a JSON body `value` that `model` rejects, with pydantic's own messages."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        # as the service's validation error handler words them
        items = [error_item({**error, "loc": ("body", *error["loc"])}) for error in exc.errors()]
        return error_example(summary, *items)
    raise ValueError("the body is valid")


def _auth_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {
        "missing_key": error_example("No X-API-Key header", api_key_error(None).item()),
        "wrong_key": error_example("A wrong X-API-Key", api_key_error("wrong").item()),
    }


def _too_large_examples(context: ExampleContext) -> Mapping[str, Example]:
    error = BodyTooLargeError(context.settings.max_body_bytes)
    return {"too_large": error_example("A body over MAX_BODY_BYTES", error.item())}


def _media_type_examples(context: ExampleContext) -> Mapping[str, Example]:
    item = ErrorItem(
        loc=["header", "Content-Type"],
        msg=f"Content-Type must be {JSON_MEDIA_TYPE} (got 'text/plain')",
        type="unsupported_media_type",
    )
    return {"text_plain": error_example("A body sent as text/plain", item)}


def record_unavailable_example() -> Example:
    # tests/system/record/test_on_the_request_path.py compares it with a full disk's answer.
    return error_example("The record's disk is full", record_unavailable("disk_full").item())


def record_off(message: str) -> ApiError:
    """The 503 of a route that needs the record, on a service run with RECORD=false."""
    return ApiError(503, ["server"], message, "record_off")


def store_error_examples(off: ApiError) -> Mapping[str, Example]:
    """The 503 examples of a route that reads or writes the record: unavailable, or off."""
    return {
        "record_unavailable": record_unavailable_example(),
        "record_off": error_example("The service runs with RECORD=false", off.item()),
    }


def _case_reference_examples(context: ExampleContext) -> Mapping[str, Example]:
    item = invalid_case_reference().item()
    return {"invalid_case_reference": error_example("An X-Case-Reference with a space", item)}


def _record_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {"record_unavailable": record_unavailable_example()}


SHARED_ERROR_EXAMPLES: Final[SourcesByStatus] = {
    400: _case_reference_examples,
    401: _auth_examples,
    413: _too_large_examples,
    415: _media_type_examples,
    503: _record_examples,
}


def json_response(answer: BaseModel) -> Response:
    """The answer as FastAPI would write it for a route whose response_model is its class."""
    return Response(answer.model_dump_json(), media_type=JSON_MEDIA_TYPE)
