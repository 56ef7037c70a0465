"""The served model: the artifact, and the answers the routes give, prepared once at startup.

All the math is the `model` package's; this module turns its outputs into answers that know no
protocol: plain dataclasses (`Answers`, `Explained`), which the native API (app/api/) and the
Open Inference Protocol (app/v2/) each write in their own shape. `ServedModel.score` is the
batch entry point: a validated matrix of scores in, probabilities and calls out.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from app.core.card import ClassName, Metrics, ModelCard, metrics_at, model_card
from app.monitoring.decision import Decision, Reason, decide, decision_indices, set_code
from app.monitoring.typicality import Typicality
from model.artifact import (
    Artifact,
    ArtifactError,
    parse_artifact,
    read_artifact_bytes,
)
from model.conformal import (
    DEFAULT_CONFIDENCE,
    set_membership,
    sorted_quantile,
)

Row = Sequence[int]


_CLASSES: Final[tuple[ClassName, ClassName]] = ("benign", "malignant")  # CLASS_NAMES, typed
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


@dataclass(frozen=True, slots=True)
class Answer:
    """One row's answer, whatever protocol asked for it."""

    probability: float  # P(malignant)
    predicted_class: ClassName  # at the threshold: malignant when probability > threshold
    prediction_set: list[ClassName]  # at the confidence
    set_code: int  # the set as app.monitoring.decision codes it (0 none .. 3 both)
    decision: Decision
    reasons: tuple[Reason, ...]  # why the decision is refer; empty otherwise
    atypical: bool


def _answer(p: float, malignant: bool, bounds: tuple[float, float], atypical: bool) -> Answer:
    benign_in, malignant_in = set_membership(p, *bounds)
    code = set_code(benign_in, malignant_in)
    decision, reasons = decide(code, atypical)
    prediction_set = _SETS[benign_in][malignant_in]
    return Answer(p, _CLASSES[malignant], prediction_set, code, decision, reasons, atypical)


@dataclass(frozen=True, slots=True)
class Answers:
    """A request's answers in row order, and what they were answered with."""

    rows: list[Answer]
    threshold: float
    confidence: float
    model_version: str


@dataclass(frozen=True, slots=True)
class Explained:
    """One row's answer with its exact Shapley values, in probability and in log-odds, in the
    order of model.features.FEATURE_NAMES."""

    answers: Answers
    base_value: float
    contributions: list[float]
    log_odds: float
    base_log_odds: float
    log_odds_contributions: list[float]
    background_rows: int


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
            card = model_card(artifact, default_confidence)
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

    def predict(self, row: Row, threshold: float | None, confidence: float | None) -> Answers:
        """One row's answer, scored as /predict scores it (model/scoring/single_row.py)."""
        return self._one(self.artifact.predict_one(row), row, threshold, confidence)

    def _one(
        self, p: float, row: Row, threshold: float | None, confidence: float | None
    ) -> Answers:
        """The answer for one row of P(malignant) `p`: class, set, decision and what decided
        them."""
        t = self.default_threshold if threshold is None else threshold
        c, bounds = self.sets.bounds(confidence)
        answer = _answer(p, p > t, bounds, self.typicality.is_atypical(row))
        return Answers([answer], t, c, self.version)

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
    ) -> Answers:
        scored = self.score(rows, threshold)
        c, bounds = self.sets.bounds(confidence)
        atypical = self.typicality.atypical_rows(np.asarray(rows)).tolist()
        probabilities, malignant = scored.probabilities.tolist(), scored.malignant.tolist()
        answers = [
            _answer(p, m, bounds, odd)
            for p, m, odd in zip(probabilities, malignant, atypical, strict=True)
        ]
        return Answers(answers, scored.threshold, c, self.version)

    def decisions(
        self, rows: NDArray[np.integer], set_codes: NDArray[np.integer]
    ) -> NDArray[np.uint8]:
        """Each row's decision as its index in app.monitoring.decision.DECISIONS, from its
        prediction set's code (0 none .. 3 both) and its typicality."""
        return decision_indices(set_codes, self.typicality.atypical_rows(rows))

    def explain(
        self, row: Row, threshold: float | None, confidence: float | None = None
    ) -> Explained:
        """The prediction with its exact Shapley values (model/shapley.py): milliseconds of
        NumPy, where `predict` takes microseconds."""
        e = self.artifact.explain(row)
        return Explained(
            self._one(e.probability, row, threshold, confidence),
            e.base_probability,
            e.phi_probability.tolist(),
            e.log_odds,
            e.base_log_odds,
            e.phi_log_odds.tolist(),
            self.artifact.n_train,
        )

    def metrics(self, threshold: float | None) -> Metrics:
        if threshold is None:
            return self.card.headline_metrics
        return metrics_at(self.artifact, threshold)


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
