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
parameter always goes through FastAPI's handler. The direct call runs the route's dependencies
as FastAPI would: the route's request check (`checked_by`) stands in for the one it names
(`stands_for`: with API_KEY set, the X-API-Key guard, checked before the body is read), and any
other dependency must be an async function of the request alone, which is called before the
endpoint. A dependency of another kind makes building the app fail: none is silently skipped.

What pydantic's JSON parser accepts, `json.loads` and the model accept with the same values:
both read JSON by the same rules (pydantic's parser is the stricter: UTF-8 only), and the model
is the same.

Both paths hold the service's JSON rules (`app/api/json_strict.py`): a body that repeats a key
anywhere is a 422 of type `duplicate_key` naming the key's path. On the direct path that costs
one `bytes.count` (a valid body with as many `:` as keys has none repeated); any other valid body
takes FastAPI's handler, whose `json()` finds the key. FastAPI's handler reads every body with
`json_strict.loads` (`StrictJSONRequest`), which also reads over-long integers, so the model
names the field instead of FastAPI calling the whole body unparsable. And a route's request
check (the API key) runs before the body is read, on both paths: a client without a valid key
learns nothing about its body. `StrictJSONRoute` is FastAPI's handler with just these rules;
`OneStepJSONBodyRoute` adds the direct call.
"""

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Final, Self

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from app.api import json_strict
from app.api.body_shape import Shape, largest_shape
from app.core.errors import duplicate_key_error

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Coroutine[Any, Any, Response]]
RequestCheck = Callable[[Request], Coroutine[Any, Any, None]]

# Content-Type values for which FastAPI certainly parses the body as JSON; any other value, even
# one FastAPI also reads as JSON, takes FastAPI's handler, which decides as it always does.
PLAIN_JSON: Final = frozenset({"application/json", "application/json; charset=utf-8"})


class StrictJSONRequest(Request):
    """A request whose `json()` reads the body with `json_strict.loads`: a repeated key is a 422
    naming its path, an integer of any length is read."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json_strict.loads(body)
            except json_strict.DuplicateKeyError as exc:
                raise duplicate_key_error(exc.path) from None
        return self._json


class OneStepJSONRequest(StrictJSONRequest):
    """A request whose `json()` is an instance of `body_model` when the body is valid for it."""

    def __init__(self, scope: Scope, receive: Receive, body_model: type[BaseModel]) -> None:
        super().__init__(scope, receive)
        self.body_model = body_model

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                valid = self.body_model.model_validate_json(body)
            except ValidationError:
                return await super().json()  # FastAPI reports the errors
            try:
                json_strict.check_unique_keys(body, valid)
            except json_strict.DuplicateKeyError as exc:
                raise duplicate_key_error(exc.path) from None
            self._json = valid
        return self._json


class StrictJSONRoute(APIRoute):
    """FastAPI's route and handler, with the service's JSON rules (`StrictJSONRequest`) and the
    route's `request_check`, if any, run before the body is read.

    `request_check`, set on a subclass made by `checked_by`, must perform exactly the check the
    route's dependencies perform (the API-key guard) and raise the same error.
    """

    request_check: ClassVar[RequestCheck | None] = None

    @classmethod
    def checked_by(cls, check: RequestCheck) -> type[Self]:
        return type(f"{cls.__name__}CheckedBy_{check.__name__}", (cls,), {"request_check": check})

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        check = type(self).request_check
        shape = self.body_shape()

        async def strict_handler(request: Request) -> Response:
            request = StrictJSONRequest(request.scope, request.receive)
            if check is not None:
                await check(request)
            if shape is not None:
                shape.refuse_larger(await request.body())
            return await fastapi_handler(request)

        return strict_handler

    def body_shape(self) -> Shape | None:
        """The most structure a valid body holds (app/api/body_shape.py), if anything bounds it."""
        model = self.body_field.field_info.annotation if self.body_field else None
        if isinstance(model, type) and issubclass(model, BaseModel):
            return largest_shape(model)
        return None


class OneStepJSONBodyRoute(StrictJSONRoute):
    """A StrictJSONRoute whose body (one pydantic model) is validated from the JSON bytes in one
    step, and whose endpoint is called directly when it is valid (see the module docstring).

    The direct call runs every dependency (see `_direct_call`); a route with a dependency it
    could not run is refused when the app is built.
    """

    def get_route_handler(self) -> Handler:
        fastapi_handler = APIRoute.get_route_handler(self)
        body_model = self.body_field.field_info.annotation if self.body_field else None
        if not (isinstance(body_model, type) and issubclass(body_model, BaseModel)):
            raise TypeError(f"{self.path}: the body must be one pydantic model")
        model: type[BaseModel] = body_model
        check = type(self).request_check
        call_directly = _direct_call(self.dependant, check, self.path)
        shape = self.body_shape()

        async def one_step_handler(request: Request) -> Response:
            request = OneStepJSONRequest(request.scope, request.receive, model)
            if check is not None:
                await check(request)
            if shape is not None:
                shape.refuse_larger(await request.body())
            content_type = request.headers.get("content-type") or ""
            if call_directly is not None and content_type.lower() in PLAIN_JSON:
                try:
                    raw = await request.body()
                    body = model.model_validate_json(raw)
                except (ValidationError, ClientDisconnect):
                    pass  # FastAPI's handler answers, exactly as it always does
                else:
                    if json_strict.keys_certainly_unique(raw, body):
                        return await call_directly(body, request)
            return await fastapi_handler(request)

        return one_step_handler


def _direct_call(
    dependant: Dependant, check: RequestCheck | None, path: str
) -> Callable[[Any, Request], Coroutine[Any, Any, Response]] | None:
    """`call(body, request)` for an async endpoint that takes exactly one body parameter and,
    optionally, the request; None for any other endpoint, which FastAPI's handler serves.

    The direct call runs what FastAPI would: the route's request check stands in for the
    dependency it performs (the API-key guard), and every other dependency must be an async
    function of the request alone, called in order. A dependency the direct call could not run
    is a TypeError when the app is built, never a dependency silently skipped."""
    endpoint = dependant.call
    others = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(others) or len(dependant.body_params) != 1 or not inspect.iscoroutinefunction(endpoint):
        return None
    hooks = _request_hooks(dependant.dependencies, check, path)
    body_name = dependant.body_params[0].name
    request_name = dependant.request_param_name
    direct: Endpoint = endpoint

    async def call(body: Any, request: Request) -> Response:
        for hook in hooks:
            await hook(request)
        if request_name is None:
            return await direct(**{body_name: body})
        return await direct(**{body_name: body, request_name: request})

    return call


def _request_hooks(
    dependencies: list[Dependant], check: RequestCheck | None, path: str
) -> list[RequestCheck]:
    """The route's dependencies as functions of the request, for the direct call."""
    hooks: list[RequestCheck] = []
    for dependency in dependencies:
        call = dependency.call
        if check is not None and getattr(check, "stands_for", None) is call:
            continue  # the request check runs it before the body is read
        if not (
            inspect.iscoroutinefunction(call)
            and dependency.request_param_name is not None
            and not dependency.dependencies
            and not any(
                (
                    dependency.path_params,
                    dependency.query_params,
                    dependency.header_params,
                    dependency.cookie_params,
                    dependency.body_params,
                )
            )
        ):
            name = getattr(call, "__name__", repr(call))
            raise TypeError(
                f"{path}: dependency {name} is not an async function of the request alone, "
                "which the one-step route could not run"
            )
        hooks.append(call)
    return hooks
