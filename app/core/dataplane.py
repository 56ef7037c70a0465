"""The served model: the artifact, and the answers the routes give, prepared once at startup.

All the math is the `model` package's; this module only turns its outputs into response bodies.
`ServedModel.score` is the protocol-neutral batch entry point: a validated matrix of scores in,
probabilities and calls out. `/predict/batch` and the Open Inference Protocol's infer (app/v2/)
are both thin adapters over it.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from app.api.schemas import (
    Architecture,
    BatchPrediction,
    ClassName,
    Conformal,
    ConformalClass,
    DataSource,
    Explanation,
    Feature,
    Metrics,
    ModelCard,
    Prediction,
    Reporting,
    Scores,
    SetCoverage,
    ThresholdRow,
    Training,
)
from app.monitoring.decision import decide, set_code
from app.monitoring.typicality import Typicality
from model.artifact import (
    CONFORMAL_SCORE,
    Artifact,
    ArtifactError,
    parse_artifact,
    read_artifact_bytes,
)
from model.conformal import (
    DEFAULT_CONFIDENCE,
    REPORT_CONFIDENCES,
    set_membership,
    sorted_quantile,
)
from model.features import CLASS_NAMES, FEATURE_NAMES, SCORE_MAX, SCORE_MIN

Row = Sequence[int]

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


def class_name(probability: float, threshold: float) -> str:
    """Malignant when the probability is strictly greater than the threshold, else benign: the
    article's rule, the same as `model.metrics.classify`."""
    return CLASS_NAMES[probability > threshold]


# The prediction set for (benign in set, malignant in set), indexed by those two booleans.
_SETS: Final[tuple[tuple[list[ClassName], list[ClassName]], ...]] = (
    ([], ["malignant"]),
    (["benign"], ["benign", "malignant"]),
)


@dataclass(frozen=True, slots=True)
class PredictionSets:
    """The conformal calibration scores as Python lists, and the bounds at the default
    confidence worked out once, so that a request pays for a lookup only when it names another
    confidence (`model.conformal` does the same math on arrays)."""

    benign: list[float]
    malignant: list[float]
    default_confidence: float
    default_bounds: tuple[float, float]

    @classmethod
    def from_artifact(cls, artifact: Artifact, default_confidence: float) -> "PredictionSets":
        benign = artifact.conformal.benign.tolist()
        malignant = artifact.conformal.malignant.tolist()
        bounds = (
            sorted_quantile(benign, default_confidence),
            sorted_quantile(malignant, default_confidence),
        )
        return cls(benign, malignant, default_confidence, bounds)

    def bounds(self, confidence: float | None) -> tuple[float, tuple[float, float]]:
        """The confidence used and (q_benign, q_malignant) at it."""
        if confidence is None or confidence == self.default_confidence:
            return self.default_confidence, self.default_bounds
        return confidence, (
            sorted_quantile(self.benign, confidence),
            sorted_quantile(self.malignant, confidence),
        )


def prediction_set(probability: float, bounds: tuple[float, float]) -> list[ClassName]:
    benign, malignant = set_membership(probability, *bounds)
    return _SETS[benign][malignant]


@dataclass(frozen=True, slots=True)
class Scored:
    """The answers for a batch of rows, in row order."""

    probabilities: NDArray[np.float64]  # (n,), P(malignant)
    malignant: NDArray[np.bool_]  # (n,), probability strictly greater than the threshold
    threshold: float


@dataclass(frozen=True, slots=True)
class ServedModel:
    artifact: Artifact
    version: str
    default_threshold: float
    sets: PredictionSets
    card: ModelCard
    typicality: Typicality

    @classmethod
    def load(cls, path: Path, default_confidence: float = DEFAULT_CONFIDENCE) -> "ServedModel":
        """Load and validate the artifact; any problem raises a one-line ArtifactError."""
        return cls.from_bytes(read_artifact_bytes(path), str(path), default_confidence)

    @classmethod
    def from_bytes(
        cls, raw: bytes, source: str, default_confidence: float = DEFAULT_CONFIDENCE
    ) -> "ServedModel":
        """Validate an artifact's bytes (read from `source`); a one-line ArtifactError if bad."""
        artifact = parse_artifact(raw, source)
        try:
            card = _model_card(artifact, default_confidence)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            problem = str(exc).splitlines()[0]
            raise ArtifactError(f"{source}: stored metrics are malformed: {problem}") from None
        # The background, the single-row tables and the batch scorer's tiled vectors prepared
        # now, not on the first request.
        _ = artifact.explainer, artifact.batch
        sets = PredictionSets.from_artifact(artifact, default_confidence)
        typicality = Typicality.from_artifact(artifact)
        return cls(
            artifact, artifact.model_version, artifact.default_threshold, sets, card, typicality
        )

    @classmethod
    def from_pinned(
        cls, pinned: "PinnedArtifact", default_confidence: float = DEFAULT_CONFIDENCE
    ) -> "ServedModel":
        """The pinned artifact's model, checked again against its pinned content hash."""
        model = cls.from_bytes(pinned.raw, pinned.source, default_confidence)
        if model.artifact.content_sha256 != pinned.content_sha256:
            raise ArtifactError(f"{pinned.source}: not the pinned model {pinned.content_sha256}")
        return model

    def predict(self, row: Row, threshold: float | None, confidence: float | None) -> Prediction:
        p = self.artifact.predict_one(row)
        return Prediction.model_validate(self._answer(p, row, threshold, confidence))

    def _answer(
        self, p: float, row: Row, threshold: float | None, confidence: float | None
    ) -> dict[str, Any]:
        """One row's answer fields for P(malignant) `p`: class, set, decision and what decided
        them."""
        t = self.default_threshold if threshold is None else threshold
        c, bounds = self.sets.bounds(confidence)
        benign_in, malignant_in = set_membership(p, *bounds)
        atypical = self.typicality.is_atypical(row)
        decision, reasons = decide(set_code(benign_in, malignant_in), atypical)
        return {
            "probability": p,
            "class": class_name(p, t),
            "prediction_set": _SETS[benign_in][malignant_in],
            "decision": decision,
            "reasons": reasons,
            "atypical": atypical,
            "threshold": t,
            "confidence": c,
            "model_version": self.version,
        }

    def score(self, rows: NDArray[Any] | Sequence[Row], threshold: float | None) -> Scored:
        """Score an (n, 9) batch whose values the caller has validated (whole numbers 1..10 in
        the feature order), at `threshold` or the model's default."""
        t = self.default_threshold if threshold is None else threshold
        # One row as /predict scores it (model/scoring/single_row.py): its bits, in less time.
        if len(rows) == 1:
            (row,) = rows.tolist() if isinstance(rows, np.ndarray) else rows
            p = self.artifact.predict_one(row)
            return Scored(np.array([p]), np.array([p > t]), t)  # no ufunc call: see single_row
        probabilities = self.artifact.score_rows(np.asarray(rows))  # model/scoring/batch.py
        return Scored(probabilities, probabilities > t, t)

    def predict_batch(
        self, rows: Sequence[Row], threshold: float | None, confidence: float | None
    ) -> BatchPrediction:
        scored = self.score(rows, threshold)
        c, bounds = self.sets.bounds(confidence)
        names = CLASS_NAMES
        atypical = self.typicality.atypical_rows(np.asarray(rows)).tolist()
        predictions = []
        for p, m, odd in zip(
            scored.probabilities.tolist(), scored.malignant.tolist(), atypical, strict=True
        ):
            benign_in, malignant_in = set_membership(p, *bounds)
            decision, reasons = decide(set_code(benign_in, malignant_in), odd)
            predictions.append(
                {
                    "probability": p,
                    "class": names[m],
                    "prediction_set": _SETS[benign_in][malignant_in],
                    "decision": decision,
                    "reasons": reasons,
                    "atypical": odd,
                }
            )
        return BatchPrediction.model_validate(
            {
                "predictions": predictions,
                "threshold": scored.threshold,
                "confidence": c,
                "model_version": self.version,
            }
        )

    def explain(
        self, row: Row, threshold: float | None, confidence: float | None = None
    ) -> Explanation:
        """The prediction with its exact Shapley values (model/shapley.py): milliseconds of
        NumPy, where `predict` takes microseconds."""
        e = self.artifact.explain(row)
        return Explanation.model_validate(
            {
                **self._answer(e.probability, row, threshold, confidence),
                "base_value": e.base_probability,
                "contributions": dict(zip(FEATURE_NAMES, e.phi_probability.tolist(), strict=True)),
                "log_odds": {
                    "log_odds": e.log_odds,
                    "base_value": e.base_log_odds,
                    "contributions": dict(zip(FEATURE_NAMES, e.phi_log_odds.tolist(), strict=True)),
                },
                "background_rows": self.artifact.n_train,
            }
        )

    def metrics(self, threshold: float | None) -> Metrics:
        if threshold is None:
            return self.card.headline_metrics
        return _metrics(self.artifact, threshold)


def _metrics(artifact: Artifact, threshold: float | None) -> Metrics:
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


def _model_card(artifact: Artifact, default_confidence: float) -> ModelCard:
    descriptions = {name: field.description or name for name, field in Scores.model_fields.items()}
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
            Feature(name=name, min=SCORE_MIN, max=SCORE_MAX, description=descriptions[name])
            for name in FEATURE_NAMES
        ],
        default_threshold=artifact.default_threshold,
        headline_metrics=_metrics(artifact, None),
        accuracy_by_threshold=table,
        conformal=_conformal(artifact, default_confidence),
    )


@dataclass(frozen=True, slots=True)
class PinnedArtifact:
    """The artifact `python -m app` read and verified once: its bytes and content hash.

    Every worker, a respawned one too, builds its model from these bytes and never reads
    MODEL_PATH, so all serve the version verified at startup whatever happens to the file.
    """

    raw: bytes
    source: str  # where it was read from, for messages
    content_sha256: str

    @classmethod
    def read(cls, path: Path, expected_sha256: str | None = None) -> "PinnedArtifact":
        """Read and verify the artifact; ArtifactError if it is bad or not `expected_sha256`."""
        raw = read_artifact_bytes(path)
        model = ServedModel.from_bytes(raw, str(path))
        found = model.artifact.content_sha256
        if expected_sha256 is not None and found != expected_sha256:
            raise ArtifactError(
                f"{path}: content hash {found} is not the one MODEL_SHA256 pins ({expected_sha256})"
            )
        return cls(raw, str(path), found)
