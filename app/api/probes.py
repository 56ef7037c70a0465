"""GET and HEAD /health/live and /health/ready: the probes a load balancer or orchestrator uses.

Open even when API_KEY is set. Liveness only says that the process answers, so that a busy or
stopping server is not restarted; readiness says whether it should be sent requests: the model
is loaded, and the server is not draining its connections before exit (app/http/server.py).
During the drain readiness is 503, so a load balancer stops sending new requests before the
connections close.
"""

from enum import Enum

from fastapi import FastAPI, Request

from app.api.responses import Responses, error_doc
from app.errors import ApiError
from app.http.server import DRAINING
from app.predictor import ServedModel
from app.schemas import Liveness, Readiness

NOT_READY: Responses = {
    503: error_doc("Not ready: the model is not loaded, or the server is shutting down."),
}


async def live() -> Liveness:
    """200 as long as the process answers HTTP."""
    return Liveness(status="ok")


async def ready(request: Request) -> Readiness:
    """200 with the model version when the service takes requests; 503 when it does not."""
    if request.scope.get(DRAINING):
        raise ApiError(503, ["server"], "The server is shutting down", "draining")
    model: ServedModel | None = getattr(request.app.state, "model", None)
    if model is None:
        raise ApiError(503, ["server"], "The model is not loaded", "model_not_loaded")
    return Readiness(status="ready", model_version=model.version)


def add_routes(app: FastAPI) -> None:
    tags: list[str | Enum] = ["service"]
    app.add_api_route("/health/live", live, methods=["GET"], summary="Liveness probe", tags=tags)
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        summary="Readiness probe",
        responses=NOT_READY,
        tags=tags,
    )
    # HEAD as separate routes, left out of the schema: one route with both methods would give
    # the two operations the same operation id.
    app.add_api_route("/health/live", live, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/health/ready", ready, methods=["HEAD"], include_in_schema=False)
