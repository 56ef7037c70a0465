"""GET and HEAD /health/live and /health/ready: the probes a load balancer or orchestrator uses.

Open even when API_KEY is set. Liveness only says that the process answers, so that a busy or
stopping server is not restarted; readiness says whether it should be sent requests: the model
is loaded, and the server is not draining its connections before exit (app/server/serve.py).
During the drain readiness is 503, so a load balancer stops sending new requests before the
connections close.
"""

from collections.abc import Mapping
from enum import Enum
from typing import Final

from fastapi import FastAPI, Request

from app.api.responses import Responses, error_doc, error_example
from app.api.schemas import Liveness, Readiness
from app.core.dataplane import ServedModel
from app.core.errors import ApiError
from app.core.recording import record_unavailable
from app.openapi.document import Example, ExampleContext, response_examples
from app.server.serve import DRAINING

NOT_READY: Final[Responses] = {
    503: error_doc(
        "Not ready: the server is shutting down, the model is not loaded, or the record of "
        "predictions cannot be written."
    ),
}


def draining_error() -> ApiError:
    return ApiError(503, ["server"], "The server is shutting down", "draining")


def _live(context: ExampleContext) -> Mapping[str, Example]:
    return {"live": Example("The process answers", Liveness(status="ok"))}


def _ready(context: ExampleContext) -> Mapping[str, Example]:
    answer = Readiness(status="ready", model_version=context.model.version)
    return {"ready": Example("The model is loaded and the server takes requests", answer)}


def _not_ready(context: ExampleContext) -> Mapping[str, Example]:
    # tests/system/api/test_probes.py compares this with a real server's answer during its drain.
    return {"draining": error_example("During the SIGTERM drain", draining_error().item())}


@response_examples({200: _live})
async def get_liveness() -> Liveness:
    """200 as long as the process answers HTTP."""
    return Liveness(status="ok")


def ready_model(request: Request) -> ServedModel:
    """The served model when the service takes requests; the 503 ApiError that says why not
    (draining, no model, the record cannot be written). Both readiness probes ask this: the
    native one and the Open Inference Protocol's."""
    if request.scope.get(DRAINING):
        raise draining_error()
    model: ServedModel | None = getattr(request.app.state, "model", None)
    if model is None:
        raise ApiError(503, ["server"], "The model is not loaded", "model_not_loaded")
    recorder = request.app.state.recorder
    if recorder is not None:
        healthy, reason = recorder.health()
        if not healthy:
            raise record_unavailable(reason or "unknown")
    return model


@response_examples({200: _ready, 503: _not_ready})
async def get_readiness(request: Request) -> Readiness:
    """200 with the model version when the service takes requests; 503 when it does not."""
    return Readiness(status="ready", model_version=ready_model(request).version)


def add_routes(app: FastAPI) -> None:
    tags: list[str | Enum] = ["service"]
    app.add_api_route(
        "/health/live",
        get_liveness,
        methods=["GET"],
        summary="Liveness probe",
        response_description="The process answers.",
        tags=tags,
    )
    app.add_api_route(
        "/health/ready",
        get_readiness,
        methods=["GET"],
        summary="Readiness probe",
        response_description="The model is loaded and the server is not shutting down.",
        responses=NOT_READY,
        tags=tags,
    )
    # HEAD as separate routes, left out of the schema: one route with both methods would give
    # the two operations the same operation id.
    for path, endpoint in (("/health/live", get_liveness), ("/health/ready", get_readiness)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
