"""The served model: the artifact, and the answers the routes give, prepared once at startup.

All the math is the `model` package's; this module only turns its outputs into response bodies.
`ServedModel.score` is the protocol-neutral batch entry point: a validated matrix of scores in,
probabilities and calls out. `/predict/batch` and the Open Inference Protocol's infer (app/v2/)
are both thin adapters over it.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from app.schemas import (
    Architecture,
    BatchPrediction,
    DataSource,
    Explanation,
    Feature,
    Metrics,
    ModelCard,
    Prediction,
    Scores,
    ThresholdRow,
    Training,
)
from model.artifact import Artifact, ArtifactError, load_artifact
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


# Rows scored per matrix product. OpenBLAS splits a product over its threads above about
# 262,144 multiply-adds (9 x 15 per row: about 1,940 rows); on a machine whose cores are busy,
# those threads wait on each other. 10,000 rows at once took 12.6 ms, in chunks of 1,024 rows
# 1.2 ms (fastest of 100 calls, scripts/bench/infer.py measures it), with the same bits.
SCORE_CHUNK_ROWS: Final = 1024


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
    card: ModelCard

    @classmethod
    def load(cls, path: Path) -> "ServedModel":
        """Load and validate the artifact; any problem raises a one-line ArtifactError."""
        artifact = load_artifact(path)
        try:
            card = _model_card(artifact)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            problem = str(exc).splitlines()[0]
            raise ArtifactError(f"{path}: stored metrics are malformed: {problem}") from None
        _ = artifact.explainer  # the background prepared now, not on the first /explain
        return cls(artifact, artifact.model_version, artifact.default_threshold, card)

    def predict(self, row: Row, threshold: float | None) -> Prediction:
        t = self.default_threshold if threshold is None else threshold
        p = self.artifact.predict_one(row)
        version = self.version
        return Prediction.model_validate(
            {"probability": p, "class": class_name(p, t), "threshold": t, "model_version": version}
        )

    def score(self, rows: NDArray[Any] | Sequence[Row], threshold: float | None) -> Scored:
        """Score an (n, 9) batch whose values the caller has validated (whole numbers 1..10 in
        the feature order), at `threshold` or the model's default."""
        t = self.default_threshold if threshold is None else threshold
        n, step = len(rows), SCORE_CHUNK_ROWS
        if n <= step:
            probabilities = self.artifact.predict_proba(rows)
        else:
            chunks = [self.artifact.predict_proba(rows[i : i + step]) for i in range(0, n, step)]
            probabilities = np.concatenate(chunks)
        return Scored(probabilities, probabilities > t, t)

    def predict_batch(self, rows: Sequence[Row], threshold: float | None) -> BatchPrediction:
        scored = self.score(rows, threshold)
        names = CLASS_NAMES
        predictions = [
            {"probability": p, "class": names[m]}
            for p, m in zip(scored.probabilities.tolist(), scored.malignant.tolist(), strict=True)
        ]
        return BatchPrediction.model_validate(
            {
                "predictions": predictions,
                "threshold": scored.threshold,
                "model_version": self.version,
            }
        )

    def explain(self, row: Row, threshold: float | None) -> Explanation:
        """The prediction with its exact Shapley values (model/shapley.py): milliseconds of
        NumPy, where `predict` takes microseconds."""
        t = self.default_threshold if threshold is None else threshold
        e = self.artifact.explain(row)
        p = e.probability
        return Explanation.model_validate(
            {
                "probability": p,
                "class": class_name(p, t),
                "threshold": t,
                "model_version": self.version,
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
            "confusion": asdict(m.confusion),
            "confusion_matrix": m.confusion.as_list(),
            "model_version": artifact.model_version,
        }
    )


def _model_card(artifact: Artifact) -> ModelCard:
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
    )
