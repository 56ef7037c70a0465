"""POST /feedback and /feedback/batch: confirmed outcomes of recorded predictions.

An outcome names the prediction by the request id it was answered with and the row's index in
that request. The same outcome again is a 200 that changes nothing; a different one is a 409
naming what is stored, unless `correction` is true, which replaces it and keeps what it replaced;
an unknown request id or row is a 404. The batch form answers each item in order with its own
status, so one bad item does not hide the others.
"""

import time
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Final, Literal

from fastapi import Body, FastAPI, Request
from fastapi.params import Depends
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.api.bodies import StrictJSONRoute
from app.api.deps import check_api_key
from app.api.responses import (
    AUTH_ERRORS,
    BODY_ERRORS,
    OUTCOME_STORE_ERRORS,
    error_doc,
    error_example,
    invalid_body_example,
    record_off,
    store_error_examples,
)
from app.api.schemas import integral_number
from app.core.errors import ApiError
from app.core.monitoring import Watch
from app.core.recording import caller_name, record_unavailable
from app.core.request_id import MAX_LENGTH as REQUEST_ID_MAX
from app.openapi.document import Example, ExampleContext, response_examples
from app.record.outcomes import (
    Outcome,
    OutcomeConflictError,
    Stored,
    UnknownPredictionError,
    put_outcome,
)
from app.record.store import SqlStore, StoreError, open_store

MAX_FEEDBACK_BATCH: Final = 1000
RECORD_OFF: Final = "Outcomes are kept in the record, which is off"
_SANE_TEXT: Final = r"^[A-Za-z0-9._:/+=@-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FeedbackRequest(_Strict):
    request_id: str = Field(
        min_length=1,
        max_length=REQUEST_ID_MAX,
        pattern=_SANE_TEXT,
        description="The X-Request-ID the prediction was answered with.",
    )
    row: Annotated[int, BeforeValidator(integral_number)] = Field(
        default=0, ge=0, le=1_000_000, description="The row's index in it."
    )
    outcome: Outcome = Field(description="The confirmed outcome, e.g. from histology.")
    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=_SANE_TEXT,
        description="Where the outcome comes from (a label such as histology).",
    )
    correction: bool = Field(
        default=False,
        description="Replace a different stored outcome (kept, with what it replaced).",
    )


class FeedbackBatchRequest(_Strict):
    outcomes: list[FeedbackRequest] = Field(min_length=1, max_length=MAX_FEEDBACK_BATCH)


class FeedbackAnswer(BaseModel):
    request_id: str
    row: int
    outcome: Outcome = Field(description="The outcome now stored.")
    status: Literal["created", "unchanged", "corrected"]
    previous: Outcome | None = Field(default=None, description="What a correction replaced.")


class FeedbackItem(BaseModel):
    request_id: str
    row: int
    status: Literal["created", "unchanged", "corrected", "conflict", "not_found"]
    outcome: Outcome | None = Field(description="The outcome stored after this item.")


class FeedbackBatchAnswer(BaseModel):
    results: list[FeedbackItem]


# The request the examples name: tests/system/api/test_openapi.py records a prediction under this
# id and confirms it benign before it compares the examples with a live server's answers.
EXAMPLE_REQUEST_ID: Final = "example-request-id"
UNKNOWN_REQUEST_ID: Final = "no-such-request-id"


def _answers(context: ExampleContext) -> Mapping[str, Example]:
    answer = FeedbackAnswer(
        request_id=EXAMPLE_REQUEST_ID, row=0, outcome="benign", status="unchanged"
    )
    return {"sent_again": Example("The outcome already stored, sent again", answer)}


def _batch_answers(context: ExampleContext) -> Mapping[str, Example]:
    answer = FeedbackBatchAnswer(
        results=[
            FeedbackItem(request_id=EXAMPLE_REQUEST_ID, row=0, status="conflict", outcome="benign"),
            FeedbackItem(request_id=UNKNOWN_REQUEST_ID, row=0, status="not_found", outcome=None),
        ]
    )
    return {"conflict_and_unknown": Example("A conflict and an unknown request", answer)}


def _unknown(context: ExampleContext) -> Mapping[str, Example]:
    item = FeedbackRequest(request_id=UNKNOWN_REQUEST_ID, outcome="benign")
    return {
        "unknown_prediction": error_example("No such recorded prediction", _not_found(item).item())
    }


def _conflict(context: ExampleContext) -> Mapping[str, Example]:
    return {
        "conflict": error_example("Another outcome is stored", _conflict_error("benign").item())
    }


def _invalid(context: ExampleContext) -> Mapping[str, Example]:
    body = {"request_id": EXAMPLE_REQUEST_ID, "outcome": "cancer"}
    return {"unknown_outcome": invalid_body_example("Not an outcome", FeedbackRequest, body)}


def _invalid_batch(context: ExampleContext) -> Mapping[str, Example]:
    body = {"outcomes": [{"request_id": EXAMPLE_REQUEST_ID, "outcome": "cancer"}]}
    return {"unknown_outcome": invalid_body_example("Not an outcome", FeedbackBatchRequest, body)}


def _conflict_error(stored: str) -> ApiError:
    return ApiError(
        409,
        ["body", "outcome"],
        f"Outcome {stored} is stored for this row; send correction: true to replace it",
        "outcome_conflict",
    )


def _watch(request: Request) -> Watch:
    watch: Watch | None = request.app.state.watch
    if watch is None:
        raise record_off(RECORD_OFF)
    return watch


def _store_errors(context: ExampleContext) -> Mapping[str, Example]:
    return store_error_examples(record_off(RECORD_OFF))


def _put(store: SqlStore, request: Request, item: FeedbackRequest) -> Stored:
    return put_outcome(
        store,
        item.request_id,
        item.row,
        item.outcome,
        source=item.source,
        caller=caller_name(request),
        now_ns=time.time_ns(),
        correction=item.correction,
    )


def _store(request: Request, item: FeedbackRequest) -> Stored:
    watch = _watch(request)
    with open_store(watch.config) as store:
        stored = _put(store, request, item)
    return stored


def _store_all(request: Request, items: list[FeedbackRequest]) -> list[FeedbackItem]:
    """Each item in its own transaction, all through one connection."""
    watch = _watch(request)
    results = []
    with open_store(watch.config) as store:
        for item in items:
            status: Literal["created", "unchanged", "corrected", "conflict", "not_found"]
            try:
                stored = _put(store, request, item)
            except UnknownPredictionError:
                status, outcome = "not_found", None
            except OutcomeConflictError as exc:
                status, outcome = "conflict", exc.stored
            else:
                status, outcome = stored.status, stored.outcome
            results.append(
                FeedbackItem(
                    request_id=item.request_id, row=item.row, status=status, outcome=outcome
                )
            )
    return results


def _not_found(item: FeedbackRequest) -> ApiError:
    return ApiError(
        404,
        ["body", "request_id"],
        f"No recorded prediction has request id {item.request_id} with a row {item.row}",
        "unknown_prediction",
    )


@response_examples(
    {200: _answers, 404: _unknown, 409: _conflict, 422: _invalid, 503: _store_errors}
)
async def post_feedback(
    body: Annotated[FeedbackRequest, Body()], request: Request
) -> FeedbackAnswer:
    """Store the confirmed outcome of one recorded prediction."""
    try:
        stored = await run_in_threadpool(_store, request, body)
    except UnknownPredictionError:
        raise _not_found(body) from None
    except OutcomeConflictError as exc:
        raise _conflict_error(exc.stored) from None
    except StoreError as exc:  # busy, full, down: the client may send it again
        raise record_unavailable(exc.reason) from None
    return FeedbackAnswer(
        request_id=body.request_id,
        row=body.row,
        outcome=stored.outcome,
        status=stored.status,
        previous=stored.previous,
    )


@response_examples({200: _batch_answers, 422: _invalid_batch, 503: _store_errors})
async def post_feedback_batch(
    body: Annotated[FeedbackBatchRequest, Body()], request: Request
) -> FeedbackBatchAnswer:
    """Store many outcomes; each item is answered in order with its own status."""
    try:
        results = await run_in_threadpool(_store_all, request, body.outcomes)
    except StoreError as exc:
        raise record_unavailable(exc.reason) from None
    return FeedbackBatchAnswer(results=results)


def add_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    auth = AUTH_ERRORS if api_key_required else {}
    tags: list[str | Enum] = ["outcomes"]
    # The service's JSON rules (no repeated key), and the key checked before the body is read.
    route_class = StrictJSONRoute.checked_by(check_api_key) if api_key_required else StrictJSONRoute
    app.router.add_api_route(
        "/feedback",
        post_feedback,
        methods=["POST"],
        summary="Send the confirmed outcome of a prediction",
        response_description="The outcome stored, and whether it was new.",
        responses={
            **BODY_ERRORS,
            **auth,
            404: error_doc("No recorded prediction has that request id and row."),
            409: error_doc("Another outcome is stored for that row."),
            **OUTCOME_STORE_ERRORS,
        },
        tags=tags,
        dependencies=guard,
        route_class_override=route_class,
    )
    app.router.add_api_route(
        "/feedback/batch",
        post_feedback_batch,
        methods=["POST"],
        summary="Send the confirmed outcomes of many predictions",
        response_description="Each item's status, in order.",
        responses={**BODY_ERRORS, **auth, **OUTCOME_STORE_ERRORS},
        tags=tags,
        dependencies=guard,
        route_class_override=route_class,
    )
