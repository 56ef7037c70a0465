"""The HTTP contract: request and response bodies.

Requests are strict: unknown fields are rejected, scores are JSON integers 1..10 (5, 5.0 or 5E0,
which JSON Schema counts as the same integer; not "5", 5.5 or true), a threshold is a finite
number in [0, 1], -0.0 read as 0.0, and a confidence a finite number strictly between 0 and 1. A
key repeated in a body is refused before these models see it (app/api/json_strict.py).
"""

import re
from functools import cache
from operator import attrgetter
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from app.core.card import FEATURE_DESCRIPTIONS, ClassName, ModelVersion
from app.core.card import AnswerModel as _Response
from app.core.card import Metrics as Metrics  # the card's parts, answered by /model and /metrics
from app.core.card import ModelCard as ModelCard
from app.core.dataplane import Answer, Answers, Explained
from app.core.errors import ErrorItem as ErrorItem  # the error contract, re-exported
from app.core.errors import ErrorResponse as ErrorResponse
from app.monitoring.decision import Decision, Reason
from model.features import FEATURE_NAMES, SCORE_MAX, SCORE_MIN

_STRICT: Final = ConfigDict(extra="forbid", strict=True)


def integral_number(value: object) -> object:
    """5.0 is the integer 5 in JSON (and JSON Schema); 5.5, NaN, "5" and true stay invalid."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


Score = Annotated[
    int, Field(ge=SCORE_MIN, le=SCORE_MAX, strict=True), BeforeValidator(integral_number)
]


def positive_zero(value: object) -> object:
    """-0.0 is 0.0 (answered without a sign it does not have); anything else is unchanged."""
    return value + 0.0 if type(value) is float else value


# JSON's number grammar (RFC 8259): no '+', no leading zeros, no '.5' or '5.', ASCII digits only.
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NON_FINITE: Final = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def json_number(value: object) -> object:
    """A query-string number read by JSON's grammar, as a body's is: Python's float() would also
    take '0_1', ' 0.5', '+0.5', '1_0e-1', 'inf' and non-ASCII digits."""
    if not isinstance(value, str):
        return value
    if _JSON_NUMBER.fullmatch(value):
        return float(value)
    if _NON_FINITE.fullmatch(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    raise PydanticCustomError(
        "float_parsing",
        "Input should be a valid number as JSON writes it, such as 0.2 or 2e-1 "
        "(no '+', '_', hex, spaces or leading '.')",
    )


Threshold = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=(
            "Call the tumour malignant when its probability is strictly greater than this. "
            "Omit (or null) for the model's default threshold."
        ),
    ),
    AfterValidator(positive_zero),
]
Confidence = Annotated[
    float,
    Field(
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description=(
            "How sure the prediction set must be to hold the true class, strictly between 0 "
            "and 1 (0.95: for 95 of 100 malignant tumours, and for 95 of 100 benign ones, the "
            "set holds the true class). Omit (or null) for the service's DEFAULT_CONFIDENCE."
        ),
    ),
]
PREDICTION_SET_MEANING: Final = (
    "The classes the model cannot rule out at the confidence: "
    '["benign"] or ["malignant"] is a confident answer; '
    '["benign", "malignant"] means the model cannot tell them apart at this confidence, and '
    "[] that neither class fits this biopsy well: both mean refer it to a person. A class with "
    "too few calibration rows for the confidence asked (see /model, conformal.classes) is "
    "always in the set."
)
PredictionSet = Annotated[list[ClassName], Field(max_length=2, description=PREDICTION_SET_MEANING)]
Probability = Annotated[
    float, Field(ge=0.0, le=1.0, description="Predicted probability that the tumour is malignant.")
]


# -- requests ----------------------------------------------------------------------------------
class Scores(BaseModel):
    """The nine cytology scores of one fine-needle aspirate."""

    model_config = _STRICT

    clump_thickness: Score = Field(description=FEATURE_DESCRIPTIONS["clump_thickness"])
    uniformity_of_cell_size: Score = Field(
        description=FEATURE_DESCRIPTIONS["uniformity_of_cell_size"]
    )
    uniformity_of_cell_shape: Score = Field(
        description=FEATURE_DESCRIPTIONS["uniformity_of_cell_shape"]
    )
    marginal_adhesion: Score = Field(description=FEATURE_DESCRIPTIONS["marginal_adhesion"])
    single_epithelial_cell_size: Score = Field(
        description=FEATURE_DESCRIPTIONS["single_epithelial_cell_size"]
    )
    bare_nuclei: Score = Field(description=FEATURE_DESCRIPTIONS["bare_nuclei"])
    bland_chromatin: Score = Field(description=FEATURE_DESCRIPTIONS["bland_chromatin"])
    normal_nucleoli: Score = Field(description=FEATURE_DESCRIPTIONS["normal_nucleoli"])
    mitoses: Score = Field(description=FEATURE_DESCRIPTIONS["mitoses"])


if tuple(Scores.model_fields) != FEATURE_NAMES:
    raise ImportError("Scores fields must follow model.features.FEATURE_NAMES (the input order)")
as_row = attrgetter(*FEATURE_NAMES)
"""The scores of a `Scores` instance as a tuple in the network's input order."""


class PredictRequest(Scores):
    """One biopsy to classify, with an optional decision threshold."""

    threshold: Threshold | None = None
    confidence: Confidence | None = None


class BatchRequest(BaseModel):
    """Several biopsies classified with one threshold; answers keep the input order."""

    model_config = _STRICT

    instances: list[Scores] = Field(
        min_length=1,
        description="One or more biopsies; at most MAX_BATCH_SIZE (1000 by default).",
    )
    threshold: Threshold | None = None
    confidence: Confidence | None = None


@cache
def limited_batch_request(max_batch_size: int) -> type[BatchRequest]:
    """BatchRequest with at most `max_batch_size` instances. pydantic checks a list's length
    before its items, so a batch over the limit is told so whatever its rows hold; the limit is
    also in the OpenAPI schema (maxItems)."""
    instances = Field(
        min_length=1,
        max_length=max_batch_size,
        description=f"One or more biopsies; at most {max_batch_size} (MAX_BATCH_SIZE).",
    )
    return create_model(
        "BatchRequest",
        __base__=BatchRequest,
        __doc__=BatchRequest.__doc__,
        __module__=__name__,
        instances=(list[Scores], instances),
    )


# -- responses ---------------------------------------------------------------------------------
class ClassifiedTumour(_Response):
    probability: Probability
    predicted_class: ClassName = Field(
        alias="class", description='"malignant" when probability > threshold, else "benign".'
    )
    prediction_set: PredictionSet
    decision: Decision = Field(
        description="benign or malignant when the prediction set holds that class alone and "
        "the scores are typical of the training data; refer otherwise (see reasons)."
    )
    reasons: list[Reason] = Field(
        max_length=3,
        description="Why the decision is refer: both_classes (the set holds both), no_class "
        "(the set is empty), atypical_input (see atypical). Empty unless refer.",
    )
    atypical: bool = Field(
        description="The scores are unlike the training data: some pair of scores is rarer "
        "among the training rows than the 1% of them the check flags by leave-one-out."
    )


class Prediction(ClassifiedTumour):
    threshold: float = Field(ge=0.0, le=1.0, description="The threshold used.")
    confidence: float = Field(gt=0.0, lt=1.0, description="The confidence of prediction_set.")
    model_version: ModelVersion


class BatchPrediction(_Response):
    predictions: list[ClassifiedTumour] = Field(description="One answer per instance, in order.")
    threshold: float = Field(ge=0.0, le=1.0, description="The threshold used for every instance.")
    confidence: float = Field(
        gt=0.0, lt=1.0, description="The confidence of every instance's prediction_set."
    )
    model_version: ModelVersion


_CHANGE = " moved the output from the base value (negative: towards benign)."


class Contributions(_Response):
    """One Shapley value per score: how much this biopsy's score moved the model's output away
    from the base value. They add up to output - base value."""

    clump_thickness: float = Field(description="How far clump thickness" + _CHANGE)
    uniformity_of_cell_size: float = Field(description="How far cell size uniformity" + _CHANGE)
    uniformity_of_cell_shape: float = Field(description="How far cell shape uniformity" + _CHANGE)
    marginal_adhesion: float = Field(description="How far marginal adhesion" + _CHANGE)
    single_epithelial_cell_size: float = Field(
        description="How far single epithelial cell size" + _CHANGE
    )
    bare_nuclei: float = Field(description="How far bare nuclei" + _CHANGE)
    bland_chromatin: float = Field(description="How far bland chromatin" + _CHANGE)
    normal_nucleoli: float = Field(description="How far normal nucleoli" + _CHANGE)
    mitoses: float = Field(description="How far mitoses" + _CHANGE)


if tuple(Contributions.model_fields) != FEATURE_NAMES:
    raise ImportError("Contributions fields must follow model.features.FEATURE_NAMES")


class LogOddsExplanation(_Response):
    """The same question asked of the network's log-odds output, log(p / (1 - p)): exact for
    that output. Not the log-odds of the probability-space values: averaging over the background
    does not commute with the sigmoid, so each side is its own explanation."""

    log_odds: float = Field(description="The network's output for this biopsy, log(p / (1 - p)).")
    base_value: float = Field(description="The mean log-odds over the background rows.")
    contributions: Contributions = Field(
        description="Each score's Shapley value in log-odds; base_value + their sum = log_odds."
    )


class Explanation(Prediction):
    """The prediction, and how each of the nine scores moved it: exact interventional Shapley
    values against the training rows (all 512 coalitions of scores; no sampling)."""

    base_value: float = Field(
        ge=0.0,
        le=1.0,
        description="The mean predicted probability over the background rows: the answer before "
        "any of this biopsy's scores is known.",
    )
    contributions: Contributions = Field(
        description="Each score's Shapley value in probability; base_value + their sum = "
        "probability (to 1e-12)."
    )
    log_odds: LogOddsExplanation
    background_rows: int = Field(
        ge=1, description="How many training rows the base value and the values average over."
    )


class Health(_Response):
    status: Literal["ok"]
    model_version: ModelVersion


class Liveness(_Response):
    status: Literal["ok"] = Field(description="The process answers.")


class Readiness(_Response):
    status: Literal["ready"] = Field(description="The model is loaded and the server not stopping.")
    model_version: ModelVersion


# -- from the data plane's answers -------------------------------------------------------------
def _tumour(answer: Answer) -> dict[str, Any]:
    return {
        "probability": answer.probability,
        "class": answer.predicted_class,
        "prediction_set": answer.prediction_set,
        "decision": answer.decision,
        "reasons": answer.reasons,
        "atypical": answer.atypical,
    }


def _settings(answers: Answers) -> dict[str, Any]:
    return {
        "threshold": answers.threshold,
        "confidence": answers.confidence,
        "model_version": answers.model_version,
    }


def prediction_of(answers: Answers) -> Prediction:
    """/predict's body for a one-row answer."""
    return Prediction.model_validate({**_tumour(answers.rows[0]), **_settings(answers)})


def batch_prediction_of(answers: Answers) -> BatchPrediction:
    predictions = [_tumour(answer) for answer in answers.rows]
    return BatchPrediction.model_validate({"predictions": predictions, **_settings(answers)})


def explanation_of(explained: Explained) -> Explanation:
    answers = explained.answers
    return Explanation.model_validate(
        {
            **_tumour(answers.rows[0]),
            **_settings(answers),
            "base_value": explained.base_value,
            "contributions": dict(zip(FEATURE_NAMES, explained.contributions, strict=True)),
            "log_odds": {
                "log_odds": explained.log_odds,
                "base_value": explained.base_log_odds,
                "contributions": dict(
                    zip(FEATURE_NAMES, explained.log_odds_contributions, strict=True)
                ),
            },
            "background_rows": explained.background_rows,
        }
    )
