"""The model card: what the service says of the model it serves, built from the artifact and
validated when the artifact loads, so a malformed artifact is refused at startup rather than
answered as a 500. `/model` answers it, `/metrics` its metrics at any threshold, the docs page
and V2's metadata read from it.
"""

import math
from dataclasses import asdict
from typing import Annotated, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from model.artifact import CONFORMAL_SCORE, Artifact
from model.conformal import REPORT_CONFIDENCES
from model.features import CLASS_NAMES, FEATURE_NAMES, SCORE_MAX, SCORE_MIN

ClassName = Literal["benign", "malignant"]
if get_args(ClassName) != CLASS_NAMES:
    raise ImportError("ClassName must list model.features.CLASS_NAMES in order")
ModelVersion = Annotated[
    str, Field(pattern="^[0-9a-f]{12}$", description="First 12 hex digits of the artifact hash.")
]


class AnswerModel(BaseModel):
    """Every answer's model: fields set by name or alias, written by alias ("class")."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


_SCALE: Final = f"; integer {SCORE_MIN} (closest to normal) to {SCORE_MAX}."
FEATURE_DESCRIPTIONS: Final[dict[str, str]] = {
    "clump_thickness": (
        "Clump thickness: "
        "benign cells tend to lie in one layer, cancer cells in thick clumps" + _SCALE
    ),
    "uniformity_of_cell_size": (
        "Uniformity of cell size: how much the cells vary in size (cancer cells vary more)" + _SCALE
    ),
    "uniformity_of_cell_shape": (
        "Uniformity of cell shape: "
        "how much the cells vary in shape (cancer cells vary more)" + _SCALE
    ),
    "marginal_adhesion": (
        "Marginal adhesion: how much the cells have lost their hold on each other" + _SCALE
    ),
    "single_epithelial_cell_size": (
        "Single epithelial cell size: how enlarged the single epithelial cells are" + _SCALE
    ),
    "bare_nuclei": (
        "Bare nuclei: how many nuclei are not surrounded by the rest of their cell" + _SCALE
    ),
    "bland_chromatin": (
        "Bland chromatin: "
        "how coarse the texture of the nucleus is (fine and even in normal cells)" + _SCALE
    ),
    "normal_nucleoli": (
        "Normal nucleoli: how visible and numerous the small bodies in the nucleus are" + _SCALE
    ),
    "mitoses": ("Mitoses: how many cells are seen dividing" + _SCALE),
}
if tuple(FEATURE_DESCRIPTIONS) != FEATURE_NAMES:
    raise ImportError("FEATURE_DESCRIPTIONS must follow model.features.FEATURE_NAMES")


class ConfusionCounts(AnswerModel):
    tn: int = Field(ge=0, description="Benign rows called benign.")
    fp: int = Field(ge=0, description="Benign rows called malignant.")
    fn: int = Field(ge=0, description="Malignant rows called benign.")
    tp: int = Field(ge=0, description="Malignant rows called malignant.")


_UNDEFINED = " null when undefined (its denominator is zero)."
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Pair = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]


class Metrics(AnswerModel):
    """Classification metrics on the artifact's validation rows at one threshold."""

    threshold: float = Field(ge=0.0, le=1.0)
    n_validation: int = Field(ge=1, description="Number of validation rows.")
    accuracy: Ratio
    sensitivity: Ratio | None = Field(description="tp / (tp + fn);" + _UNDEFINED)
    specificity: Ratio | None = Field(description="tn / (tn + fp);" + _UNDEFINED)
    precision: Ratio | None = Field(
        description="tp / (tp + fp);" + _UNDEFINED + " At threshold 1 nothing is called malignant."
    )
    f1: Ratio | None = Field(description="2 tp / (2 tp + fp + fn);" + _UNDEFINED)
    roc_auc: Ratio | None = Field(
        description="Area under the ROC curve (independent of the threshold); null when the "
        "validation rows hold a single class."
    )
    brier_score: float = Field(
        ge=0.0,
        le=1.0,
        description="Mean of (probability - outcome)^2, outcome 1 for malignant and 0 for benign; "
        "independent of the threshold; 0 is perfect.",
    )
    log_loss: float = Field(
        ge=0.0,
        description="Mean of -log(the probability given to the true class); independent of the "
        "threshold; 0 is perfect.",
    )
    ece: Ratio = Field(
        description="Expected calibration error over 10 equal-width probability bins: the "
        "row-weighted mean gap between the probability predicted and the share of malignant "
        "rows in each bin; independent of the threshold; 0 is perfectly calibrated."
    )
    confusion: ConfusionCounts
    confusion_matrix: list[Pair] = Field(
        min_length=2,
        max_length=2,
        description="[[tn, fp], [fn, tp]]: rows actual, columns predicted, benign first.",
    )
    model_version: ModelVersion


class Feature(AnswerModel):
    name: str
    min: int
    max: int
    description: str


class Architecture(AnswerModel):
    layers: list[int] = Field(description="Units per layer: inputs, hidden, output.")
    hidden_activation: str
    output_activation: str
    loss: str
    optimizer: str


class Training(AnswerModel):
    split: str
    lr: float
    iterations: int
    hidden: int
    seed: int
    n_train: int
    n_validation: int


class DataSource(AnswerModel):
    name: str
    sha256: str = Field(description="SHA-256 of the data file the model was trained on.")
    citation: str


class ThresholdRow(AnswerModel):
    threshold: float
    train_accuracy: Ratio
    validation_accuracy: Ratio


class ConformalClass(AnswerModel):
    class_name: ClassName = Field(alias="class")
    n_calibration: int = Field(ge=1, description="Calibration scores of this class.")
    max_confidence: float = Field(
        gt=0.0,
        lt=1.0,
        description="n / (n + 1): the highest confidence the calibration rows support. Above "
        "it this class is in every prediction set.",
    )


class SetCoverage(AnswerModel):
    """Prediction sets at one confidence on the validation rows (a measurement, not a bound)."""

    confidence: float
    benign_coverage: Ratio | None = Field(
        description="Share of benign rows whose set holds benign; null without benign rows."
    )
    malignant_coverage: Ratio | None = Field(
        description="Share of malignant rows whose set holds malignant; null without malignant "
        "rows."
    )
    one_class: Ratio = Field(description="Share of rows with a one-class set.")
    both: Ratio = Field(description="Share of rows whose set holds both classes (refer).")
    empty: Ratio = Field(description="Share of rows with an empty set (refer).")


class Conformal(AnswerModel):
    """How the prediction sets are calibrated, and how they did on the validation rows."""

    method: str = Field(description="Where the calibration scores come from.")
    folds: int
    fold_seed: int
    score: str = Field(description="The nonconformity score of a class.")
    default_confidence: float = Field(description="The confidence used when a request names none.")
    classes: list[ConformalClass]
    validation: list[SetCoverage]


class Reporting(AnswerModel):
    """What the reporting guidelines (TRIPOD+AI, Model Cards) ask of a card, as far as this data
    can honestly support it."""

    intended_users: list[str]
    out_of_scope: list[str]
    threshold_rationale: str
    population: str
    period: str
    subgroups: str = Field(description="Which subgroup analyses the data allows (none).")
    monitoring: str
    record: bool = Field(description="Whether this service keeps the record of predictions.")


class ModelCard(AnswerModel):
    model_version: ModelVersion
    content_sha256: str
    intended_use: str
    reporting: Reporting
    architecture: Architecture
    training: Training
    data: DataSource
    features: list[Feature]
    default_threshold: float
    headline_metrics: Metrics = Field(description="Validation metrics at the default threshold.")
    accuracy_by_threshold: list[ThresholdRow] = Field(
        description="Train and validation accuracy as the training run reported them."
    )
    conformal: Conformal


INTENDED_USE: Final = (
    "Research and teaching only. A small neural network trained on the Wisconsin Breast Cancer "
    "(Original) data set: 699 fine-needle aspirates from one hospital, collected 1989-1991 and "
    "published in 1992. It is not a medical device, has not been clinically validated, and must "
    "not be used to diagnose, screen or treat anyone."
)
DATA_NAME: Final = (
    "Breast Cancer Wisconsin (Original), UCI Machine Learning Repository (W. H. Wolberg, "
    "University of Wisconsin Hospitals, Madison)"
)
CITATION: Final = (
    'O. L. Mangasarian and W. H. Wolberg, "Cancer diagnosis via linear programming", '
    "SIAM News 23(5), September 1990, pp 1 & 18."
)


def metrics_at(artifact: Artifact, threshold: float | None) -> Metrics:
    m = artifact.validation_metrics(threshold)
    calibration = artifact.calibration_metrics()
    return Metrics.model_validate(
        {
            "threshold": m.threshold,
            "n_validation": m.n,
            "accuracy": m.accuracy,
            "sensitivity": m.sensitivity,
            "specificity": m.specificity,
            "precision": m.precision,
            "f1": m.f1,
            "roc_auc": m.roc_auc,
            "brier_score": calibration.brier_score,
            "log_loss": calibration.log_loss,
            "ece": calibration.ece,
            "confusion": asdict(m.confusion),
            "confusion_matrix": m.confusion.as_list(),
            "model_version": artifact.model_version,
        }
    )


def _conformal(artifact: Artifact, default_confidence: float) -> Conformal:
    cal = artifact.conformal
    classes = [
        ConformalClass.model_validate(
            {"class": name, "n_calibration": len(scores), "max_confidence": top}
        )
        for name, scores, top in zip(
            CLASS_NAMES,
            (cal.benign, cal.malignant),
            cal.classifier().max_confidence().tolist(),
            strict=True,
        )
    ]
    validation = []
    for confidence in sorted({*REPORT_CONFIDENCES, default_confidence}):
        s = artifact.validation_sets(confidence)
        covered = [None if math.isnan(share) else share for share in s.coverage]
        validation.append(
            SetCoverage(
                confidence=confidence,
                benign_coverage=covered[0],
                malignant_coverage=covered[1],
                one_class=s.singleton,
                both=s.both,
                empty=s.empty,
            )
        )
    return Conformal(
        method=cal.method,
        folds=cal.folds,
        fold_seed=cal.fold_seed,
        score=CONFORMAL_SCORE,
        default_confidence=default_confidence,
        classes=classes,
        validation=validation,
    )


def _reporting(artifact: Artifact) -> Reporting:
    m = artifact.validation_metrics(artifact.default_threshold)
    return Reporting(
        intended_users=[
            "researchers and teachers studying confidence and thresholds in classification",
            "engineers evaluating a documented prediction service",
        ],
        out_of_scope=[
            "diagnosing, screening or treating anyone: it is not a medical device",
            "cytology scored by other protocols, laboratories or eras than the training data's",
            "any decision about an individual patient without a clinician's own judgement",
        ],
        threshold_rationale=(
            f"{artifact.default_threshold} was chosen by cross-validation to miss few "
            "malignancies: on the validation rows its sensitivity is "
            f"{m.sensitivity} and its specificity {m.specificity}; the article's 0.5 to 0.9 "
            "trade missed malignancies for fewer false alarms (GET /metrics?threshold=T)."
        ),
        population=(
            f"{artifact.n_train + len(artifact.valid_y)} complete fine-needle aspirates of breast "
            "masses from one hospital (University of Wisconsin Hospitals, Madison)"
        ),
        period="1989-1991 (published 1992)",
        subgroups=(
            "none: the data holds no demographic field (no sex, age or ethnicity), so no "
            "subgroup analysis is possible and none is claimed"
        ),
        monitoring=(
            "outcomes sent to POST /feedback are compared with the answers in GET /monitoring "
            "(sensitivity, specificity, calibration and coverage with 95% intervals, drift of "
            "the inputs), with Prometheus alerts in deploy/prometheus/rules.yml"
        ),
        record=True,
    )


def model_card(artifact: Artifact, default_confidence: float) -> ModelCard:
    table = [
        ThresholdRow(
            threshold=float(key),
            train_accuracy=artifact.train_metrics[key]["accuracy"],
            validation_accuracy=artifact.valid_metrics[key]["accuracy"],
        )
        for key in sorted(artifact.valid_metrics, key=float)
    ]
    return ModelCard(
        model_version=artifact.model_version,
        content_sha256=artifact.content_sha256,
        intended_use=INTENDED_USE,
        reporting=_reporting(artifact),
        architecture=Architecture.model_validate(artifact.to_payload()["architecture"]),
        training=Training(
            **asdict(artifact.training),
            n_train=artifact.n_train,
            n_validation=len(artifact.valid_y),
        ),
        data=DataSource(name=DATA_NAME, sha256=artifact.data_sha256, citation=CITATION),
        features=[
            Feature(name=name, min=SCORE_MIN, max=SCORE_MAX, description=FEATURE_DESCRIPTIONS[name])
            for name in FEATURE_NAMES
        ],
        default_threshold=artifact.default_threshold,
        headline_metrics=metrics_at(artifact, None),
        accuracy_by_threshold=table,
        conformal=_conformal(artifact, default_confidence),
    )
