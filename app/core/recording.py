"""The prediction record on the request path: an answer is sent only once its record is committed.

Every route that scores rows calls `record(...)` after scoring and before answering: the record
(app/record/) is written by this process's group-commit writer, and `record` returns when the
transaction that holds it is durable. When it cannot be written (the disk is full, the database
is down), the request is answered 503 `record_unavailable` with Retry-After: never a prediction
without its record. With the RECORD setting off, there is no recorder and `record` returns at once.

The caller is the name of the API key the request presented (`request.state.caller`, set by the
key guard); the case reference is the client's opaque X-Case-Reference header, checked here before
anything is scored, and never interpreted.
"""

import time
from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from starlette.requests import Request

from app.core.errors import ApiError
from app.core.request_id import current_request_id, received_ns
from app.core.version import package_version
from app.record.chain import field_bytes
from app.record.entry import (
    SET_BENIGN,
    SET_BOTH,
    SET_MALIGNANT,
    pack_codes,
    pack_explanation,
    pack_floats,
    pack_scores,
    valid_case_ref,
)
from app.record.recorder import Recorder, RecordUnavailable

CASE_HEADER: Final = "X-Case-Reference"
RETRY_AFTER_SECONDS: Final = "1"


def case_reference(request: Request) -> str | None:
    """The client's case reference, if any; 400 unless it is 1 to 128 of [A-Za-z0-9._:/+=@-]."""
    value = request.headers.get(CASE_HEADER)
    if value is None:
        return None
    value = value.strip()
    if not valid_case_ref(value):
        raise invalid_case_reference()
    return value


def invalid_case_reference() -> ApiError:
    return ApiError(
        400,
        ["header", CASE_HEADER],
        f"{CASE_HEADER} must be 1 to 128 characters of letters, digits and ._:/+=@-",
        "invalid_case_reference",
    )


def caller_name(request: Request) -> str | None:
    """The name of the API key the request presented (set by the key guard), if any."""
    # request.state keeps its values in the ASGI scope's "state" dict: read there, since
    # getattr(request.state, "caller", None) makes State raise and format an AttributeError
    # on a service without keys, some 3 us a request
    state: dict[str, Any] | None = request.scope.get("state")
    return None if state is None else state.get("caller")


def set_codes(probabilities: NDArray[np.float64], bounds: tuple[float, float]) -> NDArray[np.uint8]:
    """Each row's prediction set as the record codes it, by the same floating-point operations
    as `model.conformal.set_membership`."""
    benign = (1.0 - (1.0 - probabilities)) <= bounds[0]
    malignant = (1.0 - probabilities) <= bounds[1]
    return (benign * SET_BENIGN + malignant * SET_MALIGNANT).astype(np.uint8)


def set_code(prediction_set: Sequence[str]) -> int:
    return SET_BENIGN * ("benign" in prediction_set) + SET_MALIGNANT * (
        "malignant" in prediction_set
    )


async def record(
    request: Request,
    *,
    route: str,
    protocol: Literal["native", "v2"],
    encoding: Literal["json", "binary"],
    scorer: Literal["single", "batch"],
    rows: Any,
    probabilities: Any,
    malignant: Any,
    sets: Any,
    threshold: float,
    confidence: float | None,
    explanation: tuple[float, Sequence[float]] | None = None,
) -> None:
    """Commit the record of one answered request; ApiError 503 if it cannot be committed."""
    recorder: Recorder | None = request.app.state.recorder
    if recorder is None:
        return
    now = time.time_ns()
    # min: a wall clock stepped back between the two readings must not make the record refused
    received = min(received_ns() or now, now)
    # The record's bytes, built from the answer without a PredictionRecord: the writer
    # process checks every field when it decodes them (a record that fails there fails its
    # commit, a 503, never a stored record); building and checking a record here too cost
    # the event loop some 30,000 instructions a request.
    payload = field_bytes(
        current_request_id() or "unknown",
        received,
        now,
        route,
        protocol,
        encoding,
        caller_name(request),
        case_reference(request),
        request.app.state.model.artifact.content_sha256,
        package_version(),
        scorer,
        float(threshold) + 0.0,  # + 0.0: a -0.0 would hash with its sign, SQLite reads 0.0
        None if confidence is None else float(confidence),
        pack_scores(rows),
        pack_floats(probabilities),
        pack_codes(malignant, "classes", 1),
        pack_codes(sets, "sets", SET_BOTH),
        None if explanation is None else pack_explanation(*explanation),
        200,
        (now - received) / 1e9,
    )
    try:
        await recorder.commit(payload, len(probabilities))
    except RecordUnavailable as exc:
        raise record_unavailable(exc.reason) from None


def record_unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        ["server"],
        f"The record of predictions cannot be written ({reason}): nothing was answered; "
        "try again later",
        "record_unavailable",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
