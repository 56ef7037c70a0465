"""The error responses the OpenAPI document lists for each kind of route, and `json_response`."""

from typing import Any, Final

from fastapi.responses import Response
from pydantic import BaseModel

from app.errors import JSON_MEDIA_TYPE
from app.schemas import ErrorResponse

Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


BODY_ERRORS: Final[Responses] = {
    413: _error("The request body is larger than MAX_BODY_BYTES (1 MiB by default)."),
    415: _error("The body is not sent as application/json."),
    422: _error("The body is not valid JSON or breaks a rule; `message` names field and rule."),
}
QUERY_ERRORS: Final[Responses] = {
    422: _error("A query parameter breaks a rule; `message` names it and the rule."),
}
AUTH_ERRORS: Final[Responses] = {
    401: _error("The X-API-Key header is missing or wrong (only when API_KEY is set)."),
}


def json_response(answer: BaseModel) -> Response:
    """The answer as FastAPI would write it for a route whose response_model is its class."""
    return Response(answer.model_dump_json(), media_type=JSON_MEDIA_TYPE)
