"""Routes whose JSON body is parsed and validated in one step, and whose endpoint is then called
directly: the hot path of /predict and /predict/batch.

FastAPI reads a JSON body with `json.loads`, validates the Python objects against the body model,
then solves the endpoint's dependencies (here: none but the body and the request) before calling
it. Profiled in process, that machinery cost /predict about 47 us of its 118 us; the whole
answer of a FastAPI endpoint that validates the same body and returns a constant took 87 us.

A route of class `OneStepJSONBodyRoute` does the common case itself: when the request declares
`Content-Type: application/json` and its bytes validate into the body model
(`model_validate_json`, pydantic's own JSON parser and the same model FastAPI would use), the
endpoint is called with that instance and the request, and its Response is the answer, as
FastAPI would pass it through. In every other case (another media type, a body the model
rejects, a client gone mid-body) FastAPI's own handler runs on the same request, so every error
answer is exactly FastAPI's. For that handler, the request's `json()` also validates in one step
(`OneStepJSONRequest`): an instance of the body model passes FastAPI's validation unchanged.

Only endpoints taking exactly the body and the request are called directly; one with any other
parameter always goes through FastAPI's handler, and so does one with dependencies, unless its
route class names a request check that does what they do (`checked_by`): with API_KEY set,
the prediction routes check the X-API-Key header with the same header reader and comparison as
their FastAPI dependency, before the endpoint is called.

What pydantic's JSON parser accepts, `json.loads` and the model accept with the same values:
both read JSON by the same rules (pydantic's parser is the stricter: UTF-8 only), and the model
is the same.
"""

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Final

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Coroutine[Any, Any, Response]]
RequestCheck = Callable[[Request], Coroutine[Any, Any, None]]

# Content-Type values for which FastAPI certainly parses the body as JSON; any other value, even
# one FastAPI also reads as JSON, takes FastAPI's handler, which decides as it always does.
PLAIN_JSON: Final = frozenset({"application/json", "application/json; charset=utf-8"})


class OneStepJSONRequest(Request):
    """A request whose `json()` is an instance of `body_model` when the body is valid for it."""

    def __init__(self, scope: Scope, receive: Receive, body_model: type[BaseModel]) -> None:
        super().__init__(scope, receive)
        self.body_model = body_model

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = self.body_model.model_validate_json(body)
            except ValidationError:
                self._json = json.loads(body)  # what Starlette does; FastAPI reports the errors
        return self._json


class OneStepJSONBodyRoute(APIRoute):
    """An APIRoute whose body (one pydantic model) is validated from the JSON bytes in one step,
    and whose endpoint is called directly when it is valid (see the module docstring).

    `request_check`, set on a subclass made by `checked_by`, stands in for the route's
    dependencies on the direct path: it must perform exactly the check they perform (the API-key
    guard) and raise the same error. Without it, a route with dependencies is never called
    directly.
    """

    request_check: ClassVar[RequestCheck | None] = None

    @classmethod
    def checked_by(cls, check: RequestCheck) -> type["OneStepJSONBodyRoute"]:
        return type(f"{cls.__name__}CheckedBy_{check.__name__}", (cls,), {"request_check": check})

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        body_model = self.body_field.field_info.annotation if self.body_field else None
        if not (isinstance(body_model, type) and issubclass(body_model, BaseModel)):
            raise TypeError(f"{self.path}: the body must be one pydantic model")
        model: type[BaseModel] = body_model
        check = type(self).request_check
        call_directly = _direct_call(self.dependant, dependencies_checked=check is not None)

        async def one_step_handler(request: Request) -> Response:
            request = OneStepJSONRequest(request.scope, request.receive, model)
            content_type = request.headers.get("content-type") or ""
            if call_directly is not None and content_type.lower() in PLAIN_JSON:
                try:
                    body = model.model_validate_json(await request.body())
                except (ValidationError, ClientDisconnect):
                    pass  # FastAPI's handler answers, exactly as it always does
                else:
                    if check is not None:
                        await check(request)
                    return await call_directly(body, request)
            return await fastapi_handler(request)

        return one_step_handler


def _direct_call(
    dependant: Dependant, dependencies_checked: bool
) -> Callable[[Any, Request], Coroutine[Any, Any, Response]] | None:
    """`call(body, request)` for an async endpoint that takes exactly one body parameter and,
    optionally, the request, and has no dependencies unless `dependencies_checked` (a request
    check stands in for them); None for any other endpoint."""
    endpoint = dependant.call
    others = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        [] if dependencies_checked else dependant.dependencies,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(others) or len(dependant.body_params) != 1 or not inspect.iscoroutinefunction(endpoint):
        return None
    body_name = dependant.body_params[0].name
    request_name = dependant.request_param_name
    direct: Endpoint = endpoint

    async def call(body: Any, request: Request) -> Response:
        if request_name is None:
            return await direct(**{body_name: body})
        return await direct(**{body_name: body, request_name: request})

    return call
