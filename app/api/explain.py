"""POST /explain: a prediction with the exact Shapley value of each of its nine scores.

Same body as /predict, same route class (app/api/bodies.py), so every body is read, checked and
refused exactly as /predict does it, and the same API-key check. One explanation evaluates the
network on 512 coalitions times the background's distinct rows: milliseconds of NumPy rather
than /predict's microseconds, so it runs in the threadpool, where NumPy releases the GIL, and
the event loop keeps serving other requests meanwhile.

No batch form: each explanation costs far more than the HTTP round trip a batch would save.
"""

from collections.abc import Mapping
from enum import Enum
from typing import Annotated

from fastapi import Body, FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.api.bodies import OneStepJSONBodyRoute
from app.api.deps import check_api_key, served_model
from app.api.predictions import record_one
from app.api.responses import (
    AUTH_ERRORS,
    BODY_ERRORS,
    RECORD_ERRORS,
    invalid_body_example,
    invalid_json_example,
    json_response,
)
from app.api.schemas import Explanation, PredictRequest, as_row, explanation_of
from app.openapi.document import Example, ExampleContext, response_examples
from app.openapi.examples import BENIGN, EXPLAIN_EXAMPLES


def _answers(context: ExampleContext) -> Mapping[str, Example]:
    """The served model's explanation of each request example, under the same name."""
    answers = {}
    for name, example in EXPLAIN_EXAMPLES.items():
        body = PredictRequest.model_validate(example["value"])
        explained = context.model.explain(as_row(body), None, body.confidence)
        answers[name] = Example(example["summary"], explanation_of(explained))
    return answers


def _invalid(context: ExampleContext) -> Mapping[str, Example]:
    return {
        "score_out_of_range": invalid_body_example(
            "bare_nuclei 0, below the scale", PredictRequest, {**BENIGN, "bare_nuclei": 0}
        ),
        "not_json": invalid_json_example('{"clump_thickness": 5,'),
    }


@response_examples({200: _answers, 422: _invalid})
async def explain(
    body: Annotated[PredictRequest, Body(openapi_examples=EXPLAIN_EXAMPLES)], request: Request
) -> Response:
    """The probability and class as /predict answers them, the base value (the mean
    probability over the training rows), and each score's Shapley value: how much that score
    moved the probability from the base value. base_value + the sum of the values equals the
    probability. `log_odds` gives the same for the network's log-odds output. It explains this
    model's answer, not the disease, and not causes."""
    model = served_model(request)
    row = as_row(body)
    explained = await run_in_threadpool(model.explain, row, body.threshold, body.confidence)
    explanation = (explained.base_value, explained.contributions)
    await record_one(request, "/explain", row, explained.answers, explanation)
    return json_response(explanation_of(explained))


def add_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    route_class = (
        OneStepJSONBodyRoute.checked_by(check_api_key) if api_key_required else OneStepJSONBodyRoute
    )
    responses = {**BODY_ERRORS, **RECORD_ERRORS, **(AUTH_ERRORS if api_key_required else {})}
    tags: list[str | Enum] = ["predictions"]
    app.router.add_api_route(
        "/explain",
        explain,
        response_model=Explanation,
        methods=["POST"],
        route_class_override=route_class,
        summary="Explain one prediction",
        response_description="The prediction, the base value, and each score's Shapley value, "
        "in probability and in log-odds.",
        responses=responses,
        tags=tags,
        dependencies=guard,
    )
