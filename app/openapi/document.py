"""The OpenAPI document, built once per app with examples computed from the served model.

FastAPI writes each response's schema, but its only example of an answer is one made up from the
types (`"probability": 1`, `"model_version": "string"`). Here every response gets a real example:

* A route's endpoint declares, with `@response_examples({status: source, ...})`, a function of
  the served model and settings (`ExampleContext`) that returns the examples for that status:
  /predict computes the answer to each of its request examples with the artifact.
* Examples of errors every route shares (401, 413, 415) are given once to `install_openapi`, and
  apply to each operation that documents that status; a route's own declaration wins.

The document is built on first use (the docs page, `/openapi.json` or `app.openapi()`), from the
model the lifespan loaded, or, before the server has started (a script exporting the schema), from
the artifact the settings name. Operation ids are the endpoints' names (`operation_id`), so a
generated client calls `predict(...)` rather than `predict_predict_post(...)`.

`/openapi.json` is served from the bytes of FastAPI's own answer, written once per root path:
FastAPI serializes the document again for every request (7 ms of the event loop for its
140 KB), which a client fetching it in a loop turns into a denial of service.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.config import Settings
from app.core.dataplane import ServedModel
from app.core.errors import JSON_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class Example:
    summary: str
    value: BaseModel | Any  # a response model, or plain JSON


@dataclass(frozen=True, slots=True)
class ExampleContext:
    """What examples are computed from: the served model and the app's settings."""

    model: ServedModel
    settings: Settings


ExampleSource = Callable[[ExampleContext], Mapping[str, Example]]
SourcesByStatus = Mapping[int, ExampleSource]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
DocumentEdit = Callable[[dict[str, Any]], None]

_ATTRIBUTE: Final = "__response_examples__"
_EDITS: Final = "openapi_document_edits"  # the app.state attribute holding them
# Root paths whose /openapi.json bytes are kept: the server's, or none (a test's app); more
# (a root path is the server's setting, never the client's) are answered uncached.
_CACHED_ROOTS: Final = 4


def response_examples(sources: SourcesByStatus) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint with the example sources of its responses, by status code; the
    endpoint itself is returned unchanged (routes may call it directly)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _ATTRIBUTE, dict(sources))
        return endpoint

    return mark


def operation_id(route: APIRoute) -> str:
    """The endpoint's name, as FastAPI's `generate_unique_id_function` (so names must be unique)."""
    return route.name


def edit_document(app: FastAPI, edit: DocumentEdit) -> None:
    """Have `edit` change the generated document in place, after the examples are added and
    before unused schemas are dropped (so a schema only a removed response named goes too)."""
    edits: list[DocumentEdit] = getattr(app.state, _EDITS, [])
    edits.append(edit)
    setattr(app.state, _EDITS, edits)


def install_openapi(app: FastAPI, shared: SourcesByStatus) -> None:
    """Replace `app.openapi` with a builder that adds real examples (FastAPI's documented way to
    extend the schema); `shared` holds the error examples common to every route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, shared)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _serve_document_bytes(app)


def _serve_document_bytes(app: FastAPI) -> None:
    """Answer `/openapi.json` with the bytes of FastAPI's own answer for the request's root path
    (it names the root path as the document's server), written on its first request."""
    routes = app.router.routes
    index = next(
        (i for i, r in enumerate(routes) if isinstance(r, Route) and r.path == app.openapi_url),
        None,
    )
    if index is None:
        return
    route = routes[index]
    assert isinstance(route, Route)
    fastapi_answer = route.endpoint
    written: dict[str, bytes] = {}

    async def document(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        body = written.get(root)
        if body is None:
            answer = await fastapi_answer(request)
            body = bytes(answer.body)
            if len(written) < _CACHED_ROOTS:
                written[root] = body
        return Response(body, media_type=JSON_MEDIA_TYPE)

    routes[index] = Route(route.path, document, methods=route.methods, include_in_schema=False)


def build_schema(app: FastAPI, shared: SourcesByStatus) -> dict[str, Any]:
    schema = FastAPI.openapi(app)
    app.openapi_schema = None  # FastAPI caches its schema; cache only the finished one
    context = ExampleContext(_model(app), app.state.settings)
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        sources = {**shared, **getattr(route.endpoint, _ATTRIBUTE, {})}
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            _add_examples(operation["responses"], sources, context)
    for edit in getattr(app.state, _EDITS, []):
        edit(schema)
    _drop_unreferenced_schemas(schema)
    return schema


_SCHEMA_REF: Final = "#/components/schemas/"


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    """Remove component schemas nothing reaches: FastAPI always adds `HTTPValidationError` and
    `ValidationError`, but this app answers its 422s in its own shape, so they document nothing."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    outside = {key: value for key, value in document.items() if key != "components"}
    outside["components"] = {
        k: v for k, v in document.get("components", {}).items() if k != "schemas"
    }
    pending, reached = list(_schema_refs(outside)), set[str]()
    while pending:
        name = pending.pop()
        if name not in reached and name in schemas:
            reached.add(name)
            pending.extend(_schema_refs(schemas[name]))
    for name in set(schemas) - reached:
        del schemas[name]


def _schema_refs(node: Any) -> Iterator[str]:
    """The names of the component schemas `node` refers to, anywhere inside it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
            yield ref.removeprefix(_SCHEMA_REF)
        for value in node.values():
            yield from _schema_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_refs(item)


def _model(app: FastAPI) -> ServedModel:
    model: ServedModel | None = getattr(app.state, "model", None)
    if model is None:  # the server has not started: document the artifact it would serve
        settings = app.state.settings
        model = ServedModel.load(settings.model_path, settings.default_confidence)
    return model


def _add_examples(
    responses: dict[str, Any], sources: SourcesByStatus, context: ExampleContext
) -> None:
    for status, response in responses.items():
        source = sources.get(int(status)) if status.isdigit() else None
        if source is None:
            continue
        media = response.setdefault("content", {}).setdefault(JSON_MEDIA_TYPE, {})
        media["examples"] = {
            name: {"summary": example.summary, "value": _json(example.value)}
            for name, example in source(context).items()
        }


def _json(value: BaseModel | Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
