"""The Open Inference Protocol (V2) under /v2: health, server and model metadata, and infer.

A thin transport adapter: app/v2/codec.py decodes the tensors into a score matrix,
`ServedModel.score` (the same call as /predict/batch) scores it, and the codec encodes the
answer. Every /v2 answer that is an error has the protocol's shape, `{"error": "..."}`,
including FastAPI's and Starlette's own (404 for an unknown path, 405) and the body limit's 413.

The infer routes read their body themselves (`RawBodyRoute`): clients send it with no
Content-Type at all (tritonclient), as application/json, or as application/octet-stream with
binary tensors after the JSON (KServe's client), none of which FastAPI's body parsing serves.
Their endpoints still declare the body model, so that the OpenAPI document and the docs page
show it with examples. With API_KEY set, infer checks the X-API-Key header exactly as /predict
does; health and metadata stay open.
"""

import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from enum import Enum
from typing import Annotated, Any, Final

from fastapi import Body, FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.api.deps import api_key_error, check_api_key, served_model
from app.api.probes import draining_error, ready_model
from app.api.responses import Responses
from app.core.config import Settings
from app.core.dataplane import ServedModel
from app.core.errors import JSON_MEDIA_TYPE, V2_PREFIX, under_prefix, v2_error_response
from app.core.recording import record, record_unavailable, set_codes
from app.core.version import package_version
from app.middleware.body_limit import PathLimit
from app.openapi.document import Example, ExampleContext, edit_document, response_examples
from app.v2.codec import (
    CLASS_OUTPUT,
    DECISION_OUTPUT,
    HEADER_LENGTH,
    PROBABILITY_OUTPUT,
    SCORES_INPUT,
    InferRequest,
    V2Error,
    decode_header,
    decode_request,
    encode_response,
    header_past_body,
    json_length,
    wants_decisions,
)
from app.v2.schemas import (
    BAD_INFER_EXAMPLES,
    INFER_EXAMPLES,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    V2ErrorResponse,
)
from model.features import N_FEATURES

PREFIX: Final = V2_PREFIX
SERVER_NAME: Final = "malignancy-predictor"
EXTENSIONS: Final = ["binary_tensor_data"]
PLATFORM: Final = "numpy_json"  # a NumPy network read from a JSON artifact
BINARY_MEDIA_TYPE: Final = "application/octet-stream"
# curl -d labels its body application/x-www-form-urlencoded, and Triton's documented curl
# examples send V2 JSON that way (Triton reads any body as the protocol's): accepted too.
CURL_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
ACCEPTED_MEDIA_TYPES: Final = frozenset({JSON_MEDIA_TYPE, BINARY_MEDIA_TYPE, CURL_MEDIA_TYPE})
MEDIA_TYPE_MESSAGE: Final = (
    f"Content-Type must be {JSON_MEDIA_TYPE} or {BINARY_MEDIA_TYPE} (or curl's "
    f"{CURL_MEDIA_TYPE}), or left out"
)
TAGS: Final[list[str | Enum]] = ["Open Inference Protocol (V2)"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


error_response = v2_error_response


def is_v2_path(scope_path: str, root_path: str = "") -> bool:
    return under_prefix(scope_path, PREFIX, root_path)


def too_large_message(max_bytes: int, setting: str) -> str:
    return f"the request body must be at most {max_bytes} bytes ({setting})"


def body_limits(settings: Settings) -> list[PathLimit]:
    """The body limits of /v2 paths, for app/middleware/body_limit.py: V2_MAX_BODY_BYTES for infer,
    MAX_BODY_BYTES for the rest, each refused in the protocol's error shape."""

    def refuse(max_bytes: int, setting: str) -> Response:
        return error_response(413, too_large_message(max_bytes, setting))

    return [
        PathLimit(
            PREFIX + "/models/", "/infer", settings.v2_max_body_bytes, "V2_MAX_BODY_BYTES", refuse
        ),
        PathLimit(PREFIX, "", settings.max_body_bytes, "MAX_BODY_BYTES", refuse),
    ]


# -- OpenAPI examples, computed from the served model and settings ------------------------------
def _error_example(summary: str, message: str) -> Example:
    return Example(summary, {"error": message})


def _server_examples(context: ExampleContext) -> Mapping[str, Example]:

    answer = ServerMetadata(name=SERVER_NAME, version=package_version(), extensions=EXTENSIONS)
    return {"server": Example("This server", answer)}


def _live_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {"live": Example("Serving", ServerLive(live=True))}


def _ready_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {"ready": Example("The model is loaded", ServerReady(ready=True))}


def _metadata_examples(context: ExampleContext) -> Mapping[str, Example]:
    answer = metadata_of(context.settings.v2_model_name, context.model)
    return {"served_model": Example("The served model", answer)}


def _model_ready_examples(context: ExampleContext) -> Mapping[str, Example]:
    answer = ModelReady(name=context.settings.v2_model_name, ready=True)
    return {"ready": Example("The model is ready", answer)}


def _unknown_model_examples(context: ExampleContext) -> Mapping[str, Example]:
    message = _unknown_model(context.settings.v2_model_name)
    return {"unknown_model": _error_example("Another model's name", message)}


def _not_ready_examples(context: ExampleContext) -> Mapping[str, Example]:
    # tests/system/api/test_probes.py and tests/system/record/test_on_the_request_path.py
    # compare these with a real drain's and a full disk's answers.
    return {
        "draining": _error_example("During the SIGTERM drain", str(draining_error().detail)),
        "record_unavailable": _error_example(
            "The record's disk is full", str(record_unavailable("disk_full").detail)
        ),
    }


def _unknown_version_examples(context: ExampleContext) -> Mapping[str, Example]:
    message = _unknown_version(context.settings.v2_model_name, context.model.version)
    return {"unknown_version": _error_example("Another version", message)}


def _infer(context: ExampleContext, body: Any) -> Any:
    """The service's answer to a JSON infer request `body`: its JSON, or its error."""
    name, model = context.settings.v2_model_name, context.model
    try:
        request = decode_request(
            json.dumps(body).encode(),
            None,
            model_name=name,
            model_version=model.version,
            max_rows=context.settings.v2_max_rows,
        )
    except V2Error as exc:
        return {"error": str(exc)}
    scored = model.score(request.rows, request.threshold)
    sets = set_codes(scored.probabilities, model.sets.default_bounds)
    decisions = model.decisions(request.rows, sets) if wants_decisions(request) else None
    encoded = encode_response(
        scored, request, model_name=name, model_version=model.version, decisions=decisions
    )
    return json.loads(encoded.body)


def _infer_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {
        name: Example(example["summary"], _infer(context, example["value"]))
        for name, example in INFER_EXAMPLES.items()
    }


def _bad_infer_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {
        name: Example(example["summary"], _infer(context, example["value"]))
        for name, example in BAD_INFER_EXAMPLES.items()
    }


def _infer_too_large_examples(context: ExampleContext) -> Mapping[str, Example]:
    message = too_large_message(context.settings.v2_max_body_bytes, "V2_MAX_BODY_BYTES")
    return {"too_large": _error_example("A body over V2_MAX_BODY_BYTES", message)}


def _infer_media_type_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {"multipart": _error_example("A multipart/form-data body", MEDIA_TYPE_MESSAGE)}


def _infer_key_examples(context: ExampleContext) -> Mapping[str, Example]:
    return {
        "missing_key": _error_example("No X-API-Key header", str(api_key_error(None).detail)),
        "wrong_key": _error_example("A wrong X-API-Key", str(api_key_error("wrong").detail)),
    }


_INFER_EXAMPLES: Final = {
    200: _infer_examples,
    400: _bad_infer_examples,
    401: _infer_key_examples,
    413: _infer_too_large_examples,
    415: _infer_media_type_examples,
}


# -- health and metadata -----------------------------------------------------------------------
@response_examples({200: _server_examples})
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


@response_examples({200: _live_examples})
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@response_examples({200: _ready_examples, 503: _not_ready_examples})
async def server_ready(request: Request) -> ServerReady:
    """Ready as /health/ready is: 503 while the server drains or the record cannot be written."""
    ready_model(request)
    return ServerReady(ready=True)


def _check_model(request: Request, model_name: str, model_version: str | None) -> None:
    settings: Settings = request.app.state.settings
    if model_name != settings.v2_model_name:
        raise V2Error(_unknown_model(settings.v2_model_name), status=404)
    version = served_model(request).version
    if model_version is not None and model_version != version:
        raise V2Error(_unknown_version(model_name, version), status=404)


def _unknown_model(served: str) -> str:
    return f"this server serves one model, {served!r}"


def _unknown_version(model_name: str, version: str) -> str:
    return f"model {model_name!r} has one version, {version!r}"


def _metadata(request: Request, model_name: str) -> ModelMetadata:
    return metadata_of(model_name, served_model(request))


def metadata_of(model_name: str, model: ServedModel) -> ModelMetadata:
    rows = -1  # the batch dimension
    return ModelMetadata(
        name=model_name,
        versions=[model.version],
        platform=PLATFORM,
        inputs=[MetadataTensor(name=SCORES_INPUT, datatype="INT64", shape=[rows, N_FEATURES])],
        outputs=[
            MetadataTensor(name=PROBABILITY_OUTPUT, datatype="FP64", shape=[rows]),
            MetadataTensor(name=CLASS_OUTPUT, datatype="BYTES", shape=[rows]),
            MetadataTensor(name=DECISION_OUTPUT, datatype="BYTES", shape=[rows]),
        ],
    )


@response_examples({200: _metadata_examples, 404: _unknown_model_examples})
async def model_metadata(request: Request, model_name: str) -> ModelMetadata:
    """Inputs: one INT64 tensor `scores` of shape [-1, 9] (any integer or float datatype is
    accepted, and so are nine [-1] tensors named by feature). Outputs: `probability` (FP64),
    `class` (BYTES, "benign" or "malignant") and, when named in the request's `outputs`,
    `decision` (BYTES, "benign", "malignant" or "refer", at the default confidence)."""
    _check_model(request, model_name, None)
    return _metadata(request, model_name)


@response_examples({200: _metadata_examples, 404: _unknown_version_examples})
async def model_version_metadata(
    request: Request, model_name: str, model_version: str
) -> ModelMetadata:
    _check_model(request, model_name, model_version)
    return _metadata(request, model_name)


@response_examples(
    {200: _model_ready_examples, 404: _unknown_model_examples, 503: _not_ready_examples}
)
async def model_ready(request: Request, model_name: str) -> ModelReady:
    _check_model(request, model_name, None)
    ready_model(request)
    return ModelReady(name=model_name, ready=True)


@response_examples(
    {200: _model_ready_examples, 404: _unknown_version_examples, 503: _not_ready_examples}
)
async def model_version_ready(request: Request, model_name: str, model_version: str) -> ModelReady:
    _check_model(request, model_name, model_version)
    ready_model(request)
    return ModelReady(name=model_name, ready=True)


# -- infer -------------------------------------------------------------------------------------
async def infer_request(request: Request) -> Response:
    """Answer one infer request, reading its body as the protocol sends it."""
    settings: Settings = request.app.state.settings
    if request.app.state.callers:
        await check_api_key(request)
    params = request.path_params
    _check_model(request, params["model_name"], params.get("model_version"))
    _check_headers(request)
    model = served_model(request)
    header_length = request.headers.get(HEADER_LENGTH)
    name, version, max_rows = settings.v2_model_name, model.version, settings.v2_max_rows
    if header_length is None:
        decoded = decode_request(
            await request.body(), None, model_name=name, model_version=version, max_rows=max_rows
        )
    else:
        decoded = await read_binary_request(
            request, header_length, model_name=name, model_version=version, max_rows=max_rows
        )
    rows = decoded.rows
    scored = model.score(rows, decoded.threshold)
    # V2 answers no set: the record keeps the set at the default confidence, as the decision.
    sets = set_codes(scored.probabilities, model.sets.default_bounds)
    decisions = model.decisions(rows, sets) if wants_decisions(decoded) else None
    decoded = decoded.without_rows()
    await record(
        request,
        route=INFER_ROUTE,
        protocol="v2",
        encoding="json" if header_length is None else "binary",
        scorer="single" if len(scored.probabilities) == 1 else "batch",
        rows=rows,
        probabilities=scored.probabilities,
        malignant=scored.malignant,
        sets=sets,
        threshold=scored.threshold,
        confidence=model.sets.default_confidence,
    )
    del rows  # the rows' memory goes back before the answer is built
    encoded = encode_response(
        scored, decoded, model_name=name, model_version=version, decisions=decisions
    )
    if encoded.header_length is None:
        return Response(encoded.body, media_type=JSON_MEDIA_TYPE)
    headers = {HEADER_LENGTH: str(encoded.header_length)}
    return Response(encoded.body, headers=headers, media_type=BINARY_MEDIA_TYPE)


async def read_binary_request(
    request: Request, header_length: str, *, model_name: str, model_version: str, max_rows: int
) -> InferRequest:
    """A request with binary tensors, decoded as its body arrives: the JSON header first, then
    each chunk (uvicorn delivers up to 64 KiB at a time) checked and converted into the score
    matrix, so that the body is never held whole. A 100,000-row INT64 body is 7.2 MB: read
    whole (into one memory map, the reader before), the worker serving such requests at 2
    connections in `make bench`, after its other scenarios, peaked at 107 MB; read as it
    arrives, at 94-95 MB. tests/unit/v2/test_fast_paths.py guards it."""
    declared = request.headers.get("content-length", "")
    body_length = int(declared) if declared.isdigit() else None
    json_end = json_length(header_length, body_length)
    chunks = request.stream().__aiter__()
    head, rest = bytearray(), memoryview(b"")
    while len(head) < json_end:
        chunk = await anext(chunks, None)
        if chunk is None:
            raise header_past_body(len(head))
        take = json_end - len(head)
        head += chunk[:take]
        rest = memoryview(chunk)[take:]  # the first binary bytes, not copied
    pending = decode_header(
        bytes(head),
        body_length,
        model_name=model_name,
        model_version=model_version,
        max_rows=max_rows,
    )
    pending.feed(rest)
    async for chunk in chunks:
        pending.feed(chunk)
    return pending.finish()


def _check_headers(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise V2Error(MEDIA_TYPE_MESSAGE, status=415)


@response_examples({**_INFER_EXAMPLES, 404: _unknown_model_examples})
async def infer(
    request: Request,
    model_name: str,
    body: Annotated[InferenceRequest, Body(openapi_examples=INFER_EXAMPLES)],
) -> Response:
    """Score biopsies given as tensors: one `scores` tensor of shape [n, 9] in the feature
    order, or nine [n] tensors named by feature; integer or float datatypes, each value a whole
    number 1..10. Outputs `probability` (FP64 [n]) and `class` (BYTES [n]); the threshold is
    `parameters.threshold`. Binary tensors (Triton's extension) work for inputs and outputs:
    `Inference-Header-Content-Length` gives the JSON's length."""
    return await infer_request(request)


@response_examples({**_INFER_EXAMPLES, 404: _unknown_version_examples})
async def infer_version(
    request: Request,
    model_name: str,
    model_version: str,
    body: Annotated[InferenceRequest, Body(openapi_examples=INFER_EXAMPLES)],
) -> Response:
    """Infer with a given model version (the model's only one; another is a 404)."""
    return await infer_request(request)


class RawBodyRoute(APIRoute):
    """A route whose requests all go to `infer_request`, which reads the body itself: FastAPI
    only documents the endpoint's parameters."""

    def get_route_handler(self) -> Handler:
        return infer_request


# -- errors ------------------------------------------------------------------------------------
def install_error_shape(app: FastAPI) -> None:
    """The codec's errors answered in the protocol's shape (app/core/errors.py renders the rest
    of /v2's errors in it too)."""
    app.add_exception_handler(V2Error, _v2_error)


async def _v2_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, V2Error)
    return error_response(exc.status, str(exc))


# -- routes ------------------------------------------------------------------------------------
_ERRORS: Final[dict[str, Any]] = {"model": V2ErrorResponse}


_MODEL: Final = PREFIX + "/models/{model_name}"
INFER_ROUTE: Final = _MODEL + "/infer"
_VERSION: Final = _MODEL + "/versions/{model_version}"
_NOT_FOUND: Final[Responses] = {404: {**_ERRORS, "description": "Unknown model or version."}}
_NOT_READY: Final[Responses] = {
    503: {
        **_ERRORS,
        "description": "Not ready, as /health/ready says: the server is shutting down, the model "
        "is not loaded, or the record of predictions cannot be written.",
    }
}


def add_routes(app: FastAPI) -> None:
    """Health and metadata, open even with API_KEY set; every /v2 error in the protocol's shape."""
    install_error_shape(app)
    _without_fastapi_422(app)
    app.add_api_route(
        PREFIX,
        server_metadata,
        methods=["GET"],
        summary="Server metadata",
        response_description="The server's name, version and protocol extensions.",
        tags=TAGS,
    )
    app.add_api_route(
        PREFIX + "/", server_metadata, methods=["GET"], include_in_schema=False, tags=TAGS
    )
    app.add_api_route(
        PREFIX + "/health/live",
        server_live,
        methods=["GET"],
        summary="Server live",
        response_description="The server answers requests.",
        tags=TAGS,
    )
    app.add_api_route(
        PREFIX + "/health/ready",
        server_ready,
        methods=["GET"],
        summary="Server ready",
        response_description="The model is loaded and the server ready to infer.",
        responses=_NOT_READY,
        tags=TAGS,
    )
    metadata = "The model's inputs and outputs, with datatypes and shapes."
    ready = "The model is loaded and ready to infer."
    model_routes: list[tuple[str, Callable[..., Awaitable[BaseModel]], str, str]] = [
        (_MODEL, model_metadata, "Model metadata", metadata),
        (_VERSION, model_version_metadata, "Model metadata of a version", metadata),
        (_MODEL + "/ready", model_ready, "Model ready", ready),
        (_VERSION + "/ready", model_version_ready, "Model ready, of a version", ready),
    ]
    ready_endpoints = (model_ready, model_version_ready)
    for path, endpoint, summary, description in model_routes:
        app.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            summary=summary,
            response_description=description,
            responses={**_NOT_FOUND, **_NOT_READY} if endpoint in ready_endpoints else _NOT_FOUND,
            tags=TAGS,
        )


def _without_fastapi_422(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with parameters; no /v2 route answers one (their
    path parameters are any string, infer reads its own body, and the edge's 422s are 400s here),
    so the document drops it from /v2 operations."""

    def drop_422(schema: dict[str, Any]) -> None:
        for path, operations in schema["paths"].items():
            if is_v2_path(path):
                for operation in operations.values():
                    operation["responses"].pop("422", None)

    edit_document(app, drop_422)


def add_infer_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    """The two infer routes; added right after /predict/batch, so that a request to them tries
    the fewest routes before its own."""
    responses: Responses = {
        200: {
            "description": "The outputs; with binary outputs, application/octet-stream: the JSON "
            "(Inference-Header-Content-Length bytes) followed by the binary tensors.",
            "content": {BINARY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        400: {**_ERRORS, "description": "The request breaks a rule; the message names it."},
        **_NOT_FOUND,
        413: {**_ERRORS, "description": "The body is larger than V2_MAX_BODY_BYTES."},
        415: {
            **_ERRORS,
            "description": "Another Content-Type (e.g. multipart), or a Content-Encoding.",
        },
    }
    if api_key_required:
        responses[401] = {**_ERRORS, "description": "The X-API-Key header is missing or wrong."}
    binary_body = {
        "requestBody": {
            "content": {BINARY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}
        }
    }
    infer_routes: list[tuple[str, Callable[..., Awaitable[Response]], str]] = [
        (_MODEL + "/infer", infer, "Infer"),
        (_VERSION + "/infer", infer_version, "Infer with a model version"),
    ]
    for path, infer_endpoint, summary in infer_routes:
        app.router.add_api_route(
            path,
            infer_endpoint,
            methods=["POST"],
            response_model=InferenceResponse,
            route_class_override=RawBodyRoute,
            summary=summary,
            responses=responses,
            openapi_extra=binary_body,
            tags=TAGS,
            dependencies=guard,
        )
