"""GET /monitoring: how the answers turned out (app/core/monitoring.py)."""

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.params import Depends
from starlette.concurrency import run_in_threadpool

from app.api.responses import AUTH_ERRORS, OUTCOME_STORE_ERRORS, record_off, store_error_examples
from app.core.monitoring import empty_answer
from app.core.recording import record_unavailable
from app.openapi.document import Example, ExampleContext, response_examples
from app.record.store import StoreError


def _answers(context: ExampleContext) -> Mapping[str, Example]:
    """The shape of an answer before any outcome: every figure undefined, the validated ones
    from the served model. tests/system/monitoring/test_live.py compares it with a live one."""
    return {"no_outcomes_yet": Example("No outcome sent yet", empty_answer(context.model))}


RECORD_OFF: Final = "Monitoring reads the record, which is off"


def _store_errors(context: ExampleContext) -> Mapping[str, Example]:
    return store_error_examples(record_off(RECORD_OFF))


@response_examples({200: _answers, 503: _store_errors})
async def get_monitoring(request: Request) -> dict[str, Any]:
    """Over the confirmed cases, cumulative and in the recent window (MONITORING_WINDOW): n per
    class; sensitivity, specificity, PPV and NPV, each case at the threshold its request used;
    ROC AUC; Brier score, ECE, calibration intercept and slope; each class's coverage by the
    prediction sets (at its request's confidence); the refer rate. Each figure is {value, lower,
    upper}, a 95% interval (Wilson for proportions, DeLong for ROC AUC, Wald for the calibration
    line, a bootstrap for ECE), beside the figure the model was validated with, overall and per
    caller. `drift`: each score's distribution in the last DRIFT_WINDOW recorded rows against the
    training rows', with its alarm (null until the window is full). Null where a figure is
    undefined (no case of a class, say)."""
    watch = request.app.state.watch
    if watch is None:
        raise record_off(RECORD_OFF)
    try:
        answer: dict[str, Any] = await run_in_threadpool(watch.latest)
    except StoreError as exc:  # busy, down: the figures come back with the store
        raise record_unavailable(exc.reason) from None
    return answer


def add_routes(app: FastAPI, guard: list[Depends], api_key_required: bool) -> None:
    tags: list[str | Enum] = ["outcomes"]
    app.add_api_route(
        "/monitoring",
        get_monitoring,
        methods=["GET"],
        summary="How the answers turned out",
        response_description="Live figures with 95% intervals, the validated ones, and drift.",
        responses={**(AUTH_ERRORS if api_key_required else {}), **OUTCOME_STORE_ERRORS},
        tags=tags,
        dependencies=guard,
    )
