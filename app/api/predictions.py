"""POST /predict and POST /predict/batch: the hot path.

The endpoints are `async def` on purpose: each does a few microseconds of NumPy, far cheaper than
the threadpool hop FastAPI makes for a plain `def`. They are added to the app itself, not through
an included APIRouter, since FastAPI 0.165 matches an included router's routes through an extra
layer that costs every request about 12 us.

Both routes are of class `OneStepJSONBodyRoute` (app/api/bodies.py): a valid JSON body is
validated from its bytes in one step and the endpoint called directly, anything else goes
through FastAPI's handler. They take the model from `request` rather than through a dependency,
and answer with the JSON of the response model already written (`json_response`): the route's
`response_model` still declares it in the OpenAPI schema, and FastAPI passes a Response through
instead of validating the model a second time and serializing it itself.
"""

from collections.abc import Callable, Coroutine, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any, Final, Literal

from fastapi import Body, FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import Response

from app.api.bodies import OneStepJSONBodyRoute
from app.api.deps import check_api_key, served_model
from app.api.responses import (
    AUTH_ERRORS,
    BODY_ERRORS,
    RECORD_ERRORS,
    invalid_body_example,
    invalid_json_example,
    json_response,
)
from app.api.schemas import (
    BatchPrediction,
    BatchRequest,
    Prediction,
    PredictRequest,
    as_row,
    batch_prediction_of,
    limited_batch_request,
    prediction_of,
)
from app.core.dataplane import Answers, Row
from app.core.recording import record
from app.observability import prometheus as telemetry
from app.openapi.document import Example, ExampleContext, response_examples
from app.openapi.examples import BATCH_EXAMPLES, BENIGN, MALIGNANT, PREDICT_EXAMPLES

PREDICT_PATH: Final = "/predict"
BATCH_PATH: Final = "/predict/batch"


def _answers(context: ExampleContext) -> Mapping[str, Example]:
    """The model's answer to each request example, under the same name."""
    answers = {}
    for name, example in PREDICT_EXAMPLES.items():
        body = PredictRequest.model_validate(example["value"])
        answer = context.model.predict(as_row(body), body.threshold, body.confidence)
        answers[name] = Example(example["summary"], prediction_of(answer))
    return answers


def _batch_answers(context: ExampleContext) -> Mapping[str, Example]:
    answers = {}
    for name, example in BATCH_EXAMPLES.items():
        body = BatchRequest.model_validate(example["value"])
        rows = [as_row(instance) for instance in body.instances]
        answer = context.model.predict_batch(rows, body.threshold, body.confidence)
        answers[name] = Example(example["summary"], batch_prediction_of(answer))
    return answers


def _invalid(context: ExampleContext) -> Mapping[str, Example]:
    return {
        "score_out_of_range": invalid_body_example(
            "mitoses 11, above the scale", PredictRequest, {**MALIGNANT, "mitoses": 11}
        ),
        "not_json": invalid_json_example('{"clump_thickness": 5,'),
    }


def _invalid_batch(context: ExampleContext) -> Mapping[str, Example]:
    limit = context.settings.max_batch_size
    return {
        "score_out_of_range": invalid_body_example(
            "The second instance has mitoses 0, below the scale",
            BatchRequest,
            {"instances": [BENIGN, {**MALIGNANT, "mitoses": 0}]},
        ),
        "too_many_instances": invalid_body_example(
            f"{limit + 1} instances, one more than MAX_BATCH_SIZE",
            limited_batch_request(limit),
            {"instances": [BENIGN] * (limit + 1)},
        ),
    }


@response_examples({200: _answers, 422: _invalid})
async def predict(
    body: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)], request: Request
) -> Response:
    """The probability that the tumour is malignant; the class: `malignant` when the
    probability is strictly greater than the threshold, else `benign`; and the prediction set
    at the confidence: the classes the model cannot rule out. `["benign"]` or `["malignant"]`
    is a confident answer; both classes, or none, means refer the biopsy to a person."""
    row = as_row(body)
    answers = served_model(request).predict(row, body.threshold, body.confidence)
    await record_one(request, PREDICT_PATH, row, answers)
    telemetry.record_prediction(PREDICT_PATH, answers.rows[0].predicted_class)
    return json_response(prediction_of(answers))


async def record_one(
    request: Request,
    route: str,
    row: Row,
    answers: Answers,
    explanation: tuple[float, Sequence[float]] | None = None,
) -> None:
    """Commit the record of a one-row native answer (/predict, /explain) before it is sent."""
    await record_answers(request, route, "single", [row], answers, explanation)


async def record_answers(
    request: Request,
    route: str,
    scorer: Literal["single", "batch"],
    rows: Sequence[Row],
    answers: Answers,
    explanation: tuple[float, Sequence[float]] | None = None,
) -> None:
    await record(
        request,
        route=route,
        protocol="native",
        encoding="json",
        scorer=scorer,
        rows=rows,
        probabilities=[a.probability for a in answers.rows],
        malignant=[a.predicted_class == "malignant" for a in answers.rows],
        sets=[a.set_code for a in answers.rows],
        threshold=answers.threshold,
        confidence=answers.confidence,
        explanation=explanation,
    )


def batch_endpoint(max_batch_size: int) -> Callable[..., Coroutine[Any, Any, Response]]:
    """The /predict/batch endpoint for a service whose batches hold at most `max_batch_size`
    instances: its body model carries the limit, so FastAPI's validation and the direct path
    both refuse a longer list before reading its rows."""
    body_model = limited_batch_request(max_batch_size)

    @response_examples({200: _batch_answers, 422: _invalid_batch})
    async def predict_batch(
        body: Annotated[body_model, Body(openapi_examples=BATCH_EXAMPLES)],  # type: ignore[valid-type]
        request: Request,
    ) -> Response:
        """Like /predict for each instance, with one threshold and one confidence for all. At
        most MAX_BATCH_SIZE instances (1000 by default); more is a 422 that states the limit."""
        batch: BatchRequest = body
        rows = [as_row(instance) for instance in batch.instances]
        answers = served_model(request).predict_batch(rows, batch.threshold, batch.confidence)
        scorer: Literal["single", "batch"] = "single" if len(rows) == 1 else "batch"
        await record_answers(request, BATCH_PATH, scorer, rows, answers)
        telemetry.record_predictions(BATCH_PATH, [a.predicted_class for a in answers.rows])
        return json_response(batch_prediction_of(answers))

    return predict_batch


def add_routes(
    app: FastAPI, guard: list[Depends], api_key_required: bool, max_batch_size: int
) -> None:
    """/predict first, as the most frequent route; `guard` is the API-key dependency, if any."""
    # The direct path runs the same check as the guard (app/api/bodies.py).
    route_class = (
        OneStepJSONBodyRoute.checked_by(check_api_key) if api_key_required else OneStepJSONBodyRoute
    )
    responses = {**BODY_ERRORS, **RECORD_ERRORS, **(AUTH_ERRORS if api_key_required else {})}
    tags: list[str | Enum] = ["predictions"]
    app.router.add_api_route(  # FastAPI.add_api_route takes no route class
        PREDICT_PATH,
        predict,
        response_model=Prediction,
        methods=["POST"],
        route_class_override=route_class,
        summary="Classify one biopsy",
        response_description=(
            "P(malignant), the class at the threshold, the prediction set at the confidence, "
            "and the model version."
        ),
        responses=responses,
        tags=tags,
        dependencies=guard,
    )
    app.router.add_api_route(
        BATCH_PATH,
        batch_endpoint(max_batch_size),
        response_model=BatchPrediction,
        methods=["POST"],
        route_class_override=route_class,
        summary="Classify several biopsies",
        response_description="One prediction per instance, in input order.",
        responses=responses,
        tags=tags,
        dependencies=guard,
    )
