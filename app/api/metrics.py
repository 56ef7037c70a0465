"""GET /metrics: the model's validation metrics at a threshold (the product's contract)."""

from collections.abc import Mapping
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.params import Depends
from pydantic import AfterValidator, BeforeValidator

from app.api.deps import ModelDep
from app.api.responses import AUTH_ERRORS, QUERY_ERRORS, error_example
from app.api.schemas import ErrorItem, Metrics, json_number, positive_zero
from app.openapi.document import Example, ExampleContext, response_examples

EXAMPLE_THRESHOLD = 0.5


def _answers(context: ExampleContext) -> Mapping[str, Example]:
    model = context.model
    return {
        "default_threshold": Example(
            f"No threshold: the model's default, {model.default_threshold}", model.metrics(None)
        ),
        "threshold_0.5": Example(
            f"?threshold={EXAMPLE_THRESHOLD}", model.metrics(EXAMPLE_THRESHOLD)
        ),
    }


def _invalid(context: ExampleContext) -> Mapping[str, Example]:
    item = ErrorItem(
        loc=["query", "threshold"],
        msg="Input should be less than or equal to 1",
        type="less_than_equal",
    )
    return {"threshold_above_one": error_example("?threshold=2", item)}


@response_examples({200: _answers, 422: _invalid})
async def get_metrics(
    model: ModelDep,
    threshold: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            allow_inf_nan=False,
            description="Decision threshold in [0, 1], written as a JSON number (0.2, 2e-1); "
            "the model's default when omitted.",
        ),
        BeforeValidator(json_number),
        AfterValidator(positive_zero),
    ] = None,
) -> Metrics:
    """Accuracy, sensitivity, specificity, precision, F1, ROC AUC and the confusion matrix on the
    validation rows stored in the artifact, recomputed at the threshold; and the calibration of
    the probabilities (Brier score, log loss, ECE over 10 bins), which no threshold changes. A
    ratio whose denominator is zero (precision at threshold 1, say) is null."""
    return model.metrics(threshold)


def add_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    app.add_api_route(
        "/metrics",
        get_metrics,
        methods=["GET"],
        summary="Validation metrics at a threshold",
        response_description="The metrics at the threshold, and the model version.",
        responses={**QUERY_ERRORS, **(AUTH_ERRORS if api_key_required else {})},
        tags=["predictions"],
        dependencies=guard,
    )
