"""The endpoints, and `add_routes`, which puts them on an app.

They are `async def` on purpose: each does a few microseconds of NumPy, far cheaper than the
threadpool hop FastAPI makes for a plain `def`. They are added to the app itself, not through an
included APIRouter, since FastAPI 0.165 matches an included router's routes through an extra
layer that costs every request about 12 us.

The two prediction routes, the hot path, are of class `OneStepJSONBodyRoute` (app/bodies.py):
a valid JSON body is validated from its bytes in one step and the endpoint called directly,
anything else goes through FastAPI's handler. They take the model from `request` rather than
through a dependency, and answer with the JSON of the response model already written (`_json`):
the route's `response_model` still declares it in the OpenAPI schema, and FastAPI passes a
Response through instead of validating the model a second time and serializing it itself.
"""

from enum import Enum
from typing import Annotated, Any, Final

from fastapi import Body, FastAPI, Query, Request, Security
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from app.bodies import OneStepJSONBodyRoute
from app.dependencies import (
    ModelDep,
    app_settings,
    check_api_key,
    require_api_key,
    served_model,
)
from app.errors import JSON_MEDIA_TYPE, ApiError
from app.examples import BATCH_EXAMPLES, PREDICT_EXAMPLES
from app.schemas import (
    BatchPrediction,
    BatchRequest,
    ErrorResponse,
    Health,
    Metrics,
    ModelCard,
    Prediction,
    PredictRequest,
    as_row,
)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


BODY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    413: _error("The request body is larger than MAX_BODY_BYTES (1 MiB by default)."),
    415: _error("The body is not sent as application/json."),
    422: _error("The body is not valid JSON or breaks a rule; `message` names field and rule."),
}
QUERY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    422: _error("A query parameter breaks a rule; `message` names it and the rule."),
}
AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _error("The X-API-Key header is missing or wrong (only when API_KEY is set)."),
}


def _json(answer: BaseModel) -> Response:
    """The answer as FastAPI would write it for a route whose response_model is its class."""
    return Response(answer.model_dump_json(), media_type=JSON_MEDIA_TYPE)


async def predict(
    body: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)], request: Request
) -> Response:
    """The probability that the tumour is malignant, and the class: `malignant` when the
    probability is strictly greater than the threshold, else `benign`."""
    return _json(served_model(request).predict(as_row(body), body.threshold))


async def predict_batch(
    body: Annotated[BatchRequest, Body(openapi_examples=BATCH_EXAMPLES)], request: Request
) -> Response:
    """Like /predict for each instance, with one threshold for all. At most MAX_BATCH_SIZE
    instances (1000 by default); more is a 422 that states the limit."""
    n = len(body.instances)
    limit = app_settings(request).max_batch_size
    if n > limit:
        raise ApiError(
            422,
            ["body", "instances"],
            f"List should have at most {limit} items (MAX_BATCH_SIZE), not {n}",
            "too_long",
        )
    rows = [as_row(instance) for instance in body.instances]
    return _json(served_model(request).predict_batch(rows, body.threshold))


async def metrics(
    model: ModelDep,
    threshold: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            allow_inf_nan=False,
            description="Decision threshold in [0, 1]; the model's default when omitted.",
        ),
    ] = None,
) -> Metrics:
    """Accuracy, sensitivity, specificity, precision, F1, ROC AUC and the confusion matrix on the
    validation rows stored in the artifact, recomputed at the threshold. A ratio whose
    denominator is zero (precision at threshold 1, say) is null."""
    return model.metrics(threshold)


async def health(model: ModelDep) -> Health:
    return Health(status="ok", model_version=model.version)


async def model_card(model: ModelDep) -> ModelCard:
    """Architecture, training settings, data hash, features with their ranges, headline
    metrics, and the intended use. Open even when API_KEY is set: it holds nothing secret."""
    return model.card


async def root() -> RedirectResponse:
    return RedirectResponse("/docs")


def add_routes(app: FastAPI, api_key_required: bool) -> None:
    """The API routes, /predict first as the most frequent. With `api_key_required`,
    /predict, /predict/batch and /metrics need the X-API-Key header."""
    guard = [Security(require_api_key)] if api_key_required else []
    # The prediction routes' direct path runs the same check as the guard (app/bodies.py).
    prediction_route = (
        OneStepJSONBodyRoute.checked_by(check_api_key) if api_key_required else OneStepJSONBodyRoute
    )
    auth_errors = AUTH_ERRORS if api_key_required else {}
    tags: list[str | Enum] = ["predictions"]
    app.router.add_api_route(  # FastAPI.add_api_route takes no route class
        "/predict",
        predict,
        response_model=Prediction,
        methods=["POST"],
        route_class_override=prediction_route,
        summary="Classify one biopsy",
        response_description="P(malignant), the class at the threshold, and the model version.",
        responses={**BODY_ERRORS, **auth_errors},
        tags=tags,
        dependencies=guard,
    )
    app.router.add_api_route(
        "/predict/batch",
        predict_batch,
        response_model=BatchPrediction,
        methods=["POST"],
        route_class_override=prediction_route,
        summary="Classify several biopsies",
        response_description="One prediction per instance, in input order.",
        responses={**BODY_ERRORS, **auth_errors},
        tags=tags,
        dependencies=guard,
    )
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Validation metrics at a threshold",
        responses={**QUERY_ERRORS, **auth_errors},
        tags=tags,
        dependencies=guard,
    )
    app.add_api_route(
        "/health", health, methods=["GET"], summary="Liveness and model version", tags=["service"]
    )
    app.add_api_route("/model", model_card, methods=["GET"], summary="Model card", tags=["service"])
    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
