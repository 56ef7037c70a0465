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

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from enum import Enum
from typing import Annotated, Any, Final

import pydantic_core
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.api.responses import Responses
from app.dependencies import check_api_key, served_model
from app.errors import JSON_MEDIA_TYPE, ApiError
from app.http.limits import PathLimit
from app.settings import Settings
from app.v2.codec import (
    CLASS_OUTPUT,
    HEADER_LENGTH,
    PROBABILITY_OUTPUT,
    SCORES_INPUT,
    V2Error,
    decode_request,
    encode_response,
)
from app.v2_schemas import (
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

PREFIX: Final = "/v2"
EXTENSIONS: Final = ["binary_tensor_data"]
PLATFORM: Final = "numpy_json"  # a NumPy network read from a JSON artifact
BINARY_MEDIA_TYPE: Final = "application/octet-stream"
# curl -d labels its body application/x-www-form-urlencoded, and Triton's documented curl
# examples send V2 JSON that way (Triton reads any body as the protocol's): accepted too.
CURL_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
ACCEPTED_MEDIA_TYPES: Final = frozenset({JSON_MEDIA_TYPE, BINARY_MEDIA_TYPE, CURL_MEDIA_TYPE})
TAGS: Final[list[str | Enum]] = ["Open Inference Protocol (V2)"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = pydantic_core.to_json({"error": message})
    return Response(body, status, headers, media_type=JSON_MEDIA_TYPE)


def is_v2_path(scope_path: str, root_path: str = "") -> bool:
    path = (
        scope_path[len(root_path) :]
        if root_path and scope_path.startswith(root_path)
        else scope_path
    )
    return path == PREFIX or path.startswith(PREFIX + "/")


def body_limits(settings: Settings) -> list[PathLimit]:
    """The body limits of /v2 paths, for app/http/limits.py: V2_MAX_BODY_BYTES for infer,
    MAX_BODY_BYTES for the rest, each refused in the protocol's error shape."""

    def refuse(max_bytes: int, setting: str) -> Response:
        return error_response(
            413, f"the request body must be at most {max_bytes} bytes ({setting})"
        )

    return [
        PathLimit(
            PREFIX + "/models/", "/infer", settings.v2_max_body_bytes, "V2_MAX_BODY_BYTES", refuse
        ),
        PathLimit(PREFIX, "", settings.max_body_bytes, "MAX_BODY_BYTES", refuse),
    ]


# -- health and metadata -----------------------------------------------------------------------
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(
        name="malignancy-predictor", version=request.app.version, extensions=EXTENSIONS
    )


async def server_live() -> ServerLive:
    return ServerLive(live=True)


async def server_ready(request: Request) -> ServerReady:
    """Ready once the model is loaded, which the server does before it accepts a connection."""
    return ServerReady(ready=hasattr(request.app.state, "model"))


def _check_model(request: Request, model_name: str, model_version: str | None) -> None:
    settings: Settings = request.app.state.settings
    if model_name != settings.v2_model_name:
        raise V2Error(f"this server serves one model, {settings.v2_model_name!r}", status=404)
    version = served_model(request).version
    if model_version is not None and model_version != version:
        raise V2Error(f"model {model_name!r} has one version, {version!r}", status=404)


def _metadata(request: Request, model_name: str) -> ModelMetadata:
    rows = -1  # the batch dimension
    return ModelMetadata(
        name=model_name,
        versions=[served_model(request).version],
        platform=PLATFORM,
        inputs=[MetadataTensor(name=SCORES_INPUT, datatype="INT64", shape=[rows, N_FEATURES])],
        outputs=[
            MetadataTensor(name=PROBABILITY_OUTPUT, datatype="FP64", shape=[rows]),
            MetadataTensor(name=CLASS_OUTPUT, datatype="BYTES", shape=[rows]),
        ],
    )


async def model_metadata(request: Request, model_name: str) -> ModelMetadata:
    """Inputs: one INT64 tensor `scores` of shape [-1, 9] (any integer or float datatype is
    accepted, and so are nine [-1] tensors named by feature). Outputs: `probability` (FP64) and
    `class` (BYTES, "benign" or "malignant")."""
    _check_model(request, model_name, None)
    return _metadata(request, model_name)


async def model_version_metadata(
    request: Request, model_name: str, model_version: str
) -> ModelMetadata:
    _check_model(request, model_name, model_version)
    return _metadata(request, model_name)


async def model_ready(request: Request, model_name: str) -> ModelReady:
    _check_model(request, model_name, None)
    return ModelReady(name=model_name, ready=True)


async def model_version_ready(request: Request, model_name: str, model_version: str) -> ModelReady:
    _check_model(request, model_name, model_version)
    return ModelReady(name=model_name, ready=True)


# -- infer -------------------------------------------------------------------------------------
async def infer_request(request: Request) -> Response:
    """Answer one infer request, reading its body as the protocol sends it."""
    settings: Settings = request.app.state.settings
    if settings.api_key is not None:
        await check_api_key(request)
    params = request.path_params
    _check_model(request, params["model_name"], params.get("model_version"))
    _check_headers(request)
    model = served_model(request)
    decoded = decode_request(
        await request.body(),
        request.headers.get(HEADER_LENGTH),
        model_name=settings.v2_model_name,
        model_version=model.version,
        max_rows=settings.v2_max_rows,
    )
    scored = model.score(decoded.rows, decoded.threshold)
    encoded = encode_response(
        scored, decoded, model_name=settings.v2_model_name, model_version=model.version
    )
    if encoded.header_length is None:
        return Response(encoded.body, media_type=JSON_MEDIA_TYPE)
    headers = {HEADER_LENGTH: str(encoded.header_length)}
    return Response(encoded.body, headers=headers, media_type=BINARY_MEDIA_TYPE)


def _check_headers(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise V2Error(
                f"Content-Type must be {JSON_MEDIA_TYPE} or {BINARY_MEDIA_TYPE} (or curl's "
                f"{CURL_MEDIA_TYPE}), or left out",
                status=415,
            )
    encoding = request.headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise V2Error("Content-Encoding is not supported: send the body uncompressed", status=415)


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
    """Answer every error on a /v2 path as `{"error": ...}`, wrapping the app's handlers."""
    app.add_exception_handler(V2Error, _v2_error)
    for kind in (HTTPException, RequestValidationError, Exception):
        app.add_exception_handler(kind, _for_v2_paths(app.exception_handlers[kind]))


async def _v2_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, V2Error)
    return error_response(exc.status, str(exc))


def _for_v2_paths(native: ExceptionHandler) -> ExceptionHandler:
    async def handler(request: Request, exc: Exception) -> Response:
        if not is_v2_path(request.url.path, request.scope.get("root_path", "")):
            answer = native(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        if isinstance(exc, ApiError):
            return error_response(exc.status_code, str(exc.detail), exc.headers)
        if isinstance(exc, HTTPException):
            message = "no such /v2 endpoint" if exc.status_code == 404 else str(exc.detail)
            return error_response(exc.status_code, message, exc.headers)
        if isinstance(exc, RequestValidationError):
            return error_response(400, "the request breaks the protocol's rules")
        return error_response(500, "internal server error")

    return handler


# -- routes ------------------------------------------------------------------------------------
_ERRORS: Final[dict[str, Any]] = {"model": V2ErrorResponse}


_MODEL: Final = PREFIX + "/models/{model_name}"
_VERSION: Final = _MODEL + "/versions/{model_version}"
_NOT_FOUND: Final[Responses] = {404: {**_ERRORS, "description": "Unknown model or version."}}


def add_routes(app: FastAPI) -> None:
    """Health and metadata, open even with API_KEY set; every /v2 error in the protocol's shape."""
    install_error_shape(app)
    app.add_api_route(
        PREFIX, server_metadata, methods=["GET"], summary="Server metadata", tags=TAGS
    )
    app.add_api_route(
        PREFIX + "/", server_metadata, methods=["GET"], include_in_schema=False, tags=TAGS
    )
    app.add_api_route(
        PREFIX + "/health/live", server_live, methods=["GET"], summary="Server live", tags=TAGS
    )
    app.add_api_route(
        PREFIX + "/health/ready", server_ready, methods=["GET"], summary="Server ready", tags=TAGS
    )
    model_routes: list[tuple[str, Callable[..., Awaitable[BaseModel]], str]] = [
        (_MODEL, model_metadata, "Model metadata"),
        (_VERSION, model_version_metadata, "Model metadata of a version"),
        (_MODEL + "/ready", model_ready, "Model ready"),
        (_VERSION + "/ready", model_version_ready, "Model ready, of a version"),
    ]
    for path, endpoint, summary in model_routes:
        app.add_api_route(
            path, endpoint, methods=["GET"], summary=summary, responses=_NOT_FOUND, tags=TAGS
        )


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
