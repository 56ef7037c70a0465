"""GET /metrics: the model's validation metrics at a threshold (the product's contract)."""

from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.params import Depends

from app.api.responses import AUTH_ERRORS, QUERY_ERRORS
from app.dependencies import ModelDep
from app.schemas import Metrics


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


def add_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Validation metrics at a threshold",
        responses={**QUERY_ERRORS, **(AUTH_ERRORS if api_key_required else {})},
        tags=["predictions"],
        dependencies=guard,
    )
