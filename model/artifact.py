"""The model artifact: one JSON file with everything the service serves, checked on load.

JSON, not pickle: loading it runs no code. Floats are written with `repr` precision, so weights
round-trip bit for bit. The file carries the SHA-256 of its own canonical content (without that
field); its first 12 hex digits are the model version.
"""

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.calibration import CalibrationMetrics, calibration_metrics
from model.conformal import ConformalClassifier, SetSummary, summarize_sets
from model.defaults import SERVED
from model.features import CLASS_NAMES, FEATURE_NAMES, SCORE_MAX, SCORE_MIN
from model.metrics import ThresholdMetrics, evaluate
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from model.scoring.batch import BatchScorer
from model.scoring.single_row import SingleRowScorer
from model.shapley import Explanation, ShapleyExplainer
from model.splits import SPLITS

FORMAT: Final = "malignancy-predictor/artifact"
# 2: the background (distinct training rows and their counts) for Shapley explanations.
# 3: the conformal calibration scores of the prediction sets.
FORMAT_VERSION: Final = 3
DEFAULT_ARTIFACT_PATH: Final = Path(__file__).resolve().parent / "weights.json"
REPORT_THRESHOLDS: Final = (0.5, 0.7, 0.8, 0.9)  # the article's table
MAX_ARTIFACT_BYTES: Final = 16 * 1024 * 1024
BACKGROUND_DESCRIPTION: Final = (
    "The training rows' distinct score vectors and how many training rows hold each: the "
    "background that Shapley explanations average over."
)
CROSS_CONFORMAL: Final = "cross-conformal"
CONFORMAL_METHODS: Final = (CROSS_CONFORMAL,)
# The nonconformity score of a class: one minus the probability the model gives it ("LAC").
CONFORMAL_SCORE: Final = "1 - P(class)"


class ArtifactError(ValueError):
    """The artifact is missing, unreadable or invalid; the message is one line."""


@dataclass(frozen=True)
class TrainingSettings:
    split: str = SERVED.split
    lr: float = SERVED.lr
    iterations: int = SERVED.iterations
    hidden: int = SERVED.hidden
    seed: int = SERVED.seed


@dataclass(frozen=True, eq=False)
class ConformalCalibration:
    """How the conformal calibration scores were made, and the scores: per class, sorted
    ascending, the score 1 - P(true class) of each calibration row of that class."""

    method: str
    folds: int
    fold_seed: int
    benign: NDArray[np.float64]
    malignant: NDArray[np.float64]

    def classifier(self) -> ConformalClassifier:
        """The class-conditional (Mondrian) prediction-set model these scores define."""
        return ConformalClassifier.from_sorted_scores(self.benign, self.malignant)

    def to_payload(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "score": CONFORMAL_SCORE,
            "mondrian": True,
            "folds": self.folds,
            "fold_seed": self.fold_seed,
            "scores": {"benign": self.benign.tolist(), "malignant": self.malignant.tolist()},
        }


@dataclass
class Artifact:
    network: TwoLayerNet
    scaler: MinMaxScaler
    training: TrainingSettings
    default_threshold: float
    data_sha256: str
    n_train: int
    final_loss: float
    valid_sample_ids: NDArray[np.int64]
    valid_y: NDArray[np.int64]
    valid_proba: NDArray[np.float64]
    train_metrics: dict[str, dict[str, Any]]
    valid_metrics: dict[str, dict[str, Any]]
    # The training rows' distinct score vectors (raw, 1..10, lexicographic order) and how many
    # training rows hold each: the background of the Shapley explanations. Counts sum to n_train.
    background_rows: NDArray[np.int64]
    background_counts: NDArray[np.int64]
    conformal: ConformalCalibration
    content_sha256: str = field(default="")

    @property
    def model_version(self) -> str:
        return self.content_sha256[:12]

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """P(malignant) for raw scores X of shape (n, 9)."""
        return self.network.predict_proba(self.scaler.transform(X))

    @cached_property
    def batch(self) -> BatchScorer:
        return BatchScorer(self.network, self.scaler)

    def score_rows(self, rows: NDArray[np.integer]) -> NDArray[np.float64]:
        """P(malignant) for an (n, 9) array of raw scores that the caller has validated: the
        batch routes' hot path (model/scoring/batch.py): the scaler folded into the first layer,
        chunk
        by chunk into reused buffers; within 1e-15 of `predict_proba`, and as close to the exact
        values."""
        return self.batch.probabilities(rows)

    @cached_property
    def single_row(self) -> SingleRowScorer:
        return SingleRowScorer(self.network, self.scaler)

    def predict_one(self, scores: Sequence[float]) -> float:
        """P(malignant) for one row of nine raw scores that the caller has validated: the
        service's hot path (model/scoring/single_row.py). The same formula in plain floats; it may
        differ from `predict_proba` in the last bits."""
        return self.single_row.probability(scores)

    @cached_property
    def explainer(self) -> ShapleyExplainer:
        """Built on first use: the background scaled and its first layer computed once."""
        return ShapleyExplainer(
            self.network,
            self.scaler,
            self.background_rows,
            self.background_counts,
            single_row=self.single_row,
        )

    def explain(self, scores: Sequence[float]) -> Explanation:
        """The exact Shapley values of one row of nine raw scores against the background, in
        probability and in log-odds (model/shapley.py)."""
        return self.explainer.explain(scores)

    def validation_metrics(self, threshold: float | None = None) -> ThresholdMetrics:
        t = self.default_threshold if threshold is None else threshold
        return evaluate(self.valid_y, self.valid_proba, t)

    def calibration_metrics(self) -> CalibrationMetrics:
        """Brier score, log loss and ECE of the validation probabilities (no threshold)."""
        return calibration_metrics(self.valid_y, self.valid_proba)

    def validation_sets(self, confidence: float) -> SetSummary:
        """Per-class coverage and set sizes of the prediction sets on the validation rows."""
        sets = self.conformal.classifier().predict_set(self.valid_proba, confidence)
        return summarize_sets(sets, self.valid_y, confidence)

    # -- serialization ------------------------------------------------------------------------
    def to_payload(self) -> dict[str, Any]:
        net = self.network
        assert self.scaler.min_ is not None
        assert self.scaler.max_ is not None
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": {
                "layers": [int(net.n_features_in_), int(net.hidden), 1],
                "hidden_activation": "relu",
                "output_activation": "sigmoid",
                "loss": "binary_cross_entropy",
                "optimizer": "full-batch gradient descent",
            },
            "features": [{"name": n, "min": SCORE_MIN, "max": SCORE_MAX} for n in FEATURE_NAMES],
            "scaler": {"min": self.scaler.min_.tolist(), "max": self.scaler.max_.tolist()},
            "parameters": {
                "W1": net.W1_.tolist(),
                "b1": net.b1_.tolist(),
                "W2": net.W2_.tolist(),
                "b2": net.b2_.tolist(),
            },
            "training": {
                **asdict(self.training),
                "data_sha256": self.data_sha256,
                "n_train": self.n_train,
                "n_valid": len(self.valid_y),
                "final_loss": self.final_loss,
            },
            "default_threshold": self.default_threshold,
            "validation": {
                "sample_ids": self.valid_sample_ids.tolist(),
                "y_true": self.valid_y.tolist(),
                "proba": self.valid_proba.tolist(),
            },
            "metrics": {"train": self.train_metrics, "validation": self.valid_metrics},
            "background": {
                "description": BACKGROUND_DESCRIPTION,
                "rows": self.background_rows.tolist(),
                "counts": self.background_counts.tolist(),
            },
            "conformal": self.conformal.to_payload(),
        }

    def to_json(self) -> str:
        payload = self.to_payload()
        self.content_sha256 = content_hash(payload)
        payload["content_sha256"] = self.content_sha256
        return json.dumps(payload, indent=1, allow_nan=False) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, then rename over `path`."""
        text = self.to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def content_hash(payload: dict[str, Any]) -> str:
    body = {k: v for k, v in payload.items() if k != "content_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def metrics_table(y: ArrayLike, proba: ArrayLike, thresholds: list[float]) -> dict[str, Any]:
    return {f"{t:g}": evaluate(y, proba, t).as_dict() for t in thresholds}


# -- loading ----------------------------------------------------------------------------------
def load_artifact(path: Path = DEFAULT_ARTIFACT_PATH) -> Artifact:
    """Read and validate an artifact; any problem raises ArtifactError naming the file."""
    return parse_artifact(read_artifact_bytes(path), str(path))


def read_artifact_bytes(path: Path) -> bytes:
    """The file's bytes, unparsed; ArtifactError naming the file if it cannot be read."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_ARTIFACT_BYTES + 1)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read artifact: {exc.strerror or exc}") from None
    if len(raw) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"{path}: file is larger than {MAX_ARTIFACT_BYTES} bytes")
    return raw


def parse_artifact(raw: bytes, source: str) -> Artifact:
    """Validate an artifact from its bytes; any problem raises ArtifactError naming `source`."""
    try:
        return _from_payload(_parse_json(raw))
    except ArtifactError as exc:
        raise ArtifactError(f"{source}: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:  # a shape or type the checks let through
        raise ArtifactError(f"{source}: invalid artifact: {exc}") from None


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"not valid JSON ({exc}); truncated or corrupt?") from None
    if not isinstance(payload, dict):
        raise ArtifactError("top level is not a JSON object")
    return payload


def _reject_constant(token: str) -> float:
    raise ArtifactError(f"non-finite number {token} in artifact")


def _require(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in payload:
        raise ArtifactError(f"missing field {key!r}")
    value = payload[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ArtifactError(f"field {key!r} has the wrong type")
    return value


def _array(value: Any, name: str, shape: tuple[int, ...]) -> NDArray[np.float64]:
    try:
        # No dtype first: NumPy would convert a string such as "0.1" to a float.
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ArtifactError(f"{name} is not a numeric array") from None
    if arr.dtype.kind not in "iuf":
        raise ArtifactError(f"{name} is not a numeric array")
    arr = arr.astype(np.float64)
    if arr.shape != shape:
        raise ArtifactError(f"{name} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise ArtifactError(f"{name} contains non-finite numbers")
    return arr


def _check_header(payload: dict[str, Any]) -> None:
    if payload.get("format") != FORMAT:
        raise ArtifactError(f"not a {FORMAT} file")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    stored = _require(payload, "content_sha256", str)
    try:
        actual = content_hash(payload)
    except ValueError:  # json refuses inf, which Python parses from an overflowing literal
        raise ArtifactError("non-finite number in artifact") from None
    if stored != actual:
        raise ArtifactError("content hash mismatch: the file was modified after it was written")
    names = [f.get("name") for f in _require(payload, "features", list) if isinstance(f, dict)]
    if names != list(FEATURE_NAMES):
        raise ArtifactError("feature names differ from the nine this service expects")


def _training(payload: dict[str, Any]) -> tuple[TrainingSettings, dict[str, Any]]:
    t = _require(payload, "training", dict)
    settings = TrainingSettings(
        split=_require(t, "split", str),
        lr=float(_require(t, "lr", (int, float))),
        iterations=_require(t, "iterations", int),
        hidden=_require(t, "hidden", int),
        seed=_require(t, "seed", int),
    )
    if settings.split not in SPLITS or settings.hidden < 1 or settings.iterations < 1:
        raise ArtifactError("training settings are out of range")
    return settings, t


def _network(payload: dict[str, Any], hidden: int) -> tuple[TwoLayerNet, MinMaxScaler]:
    p = _require(payload, "parameters", dict)
    d = len(FEATURE_NAMES)
    net = TwoLayerNet(hidden=hidden).set_params(
        _array(p.get("W1"), "W1", (hidden, d)),
        _array(p.get("b1"), "b1", (hidden,)),
        _array(p.get("W2"), "W2", (1, hidden)),
        _array(p.get("b2"), "b2", (1,)),
    )
    s = _require(payload, "scaler", dict)
    lo, hi = _array(s.get("min"), "scaler min", (d,)), _array(s.get("max"), "scaler max", (d,))
    if not np.all(lo <= hi):
        raise ArtifactError("scaler min exceeds max")
    return net, MinMaxScaler.from_bounds(lo, hi)


def _validation(payload: dict[str, Any]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    v = _require(payload, "validation", dict)
    n = len(_require(v, "y_true", list))
    if n == 0:
        raise ArtifactError("validation set is empty")
    y = _array(v["y_true"], "validation y_true", (n,))
    proba = _array(_require(v, "proba", list), "validation proba", (n,))
    ids = _array(_require(v, "sample_ids", list), "validation sample_ids", (n,))
    if not np.isin(y, (0.0, 1.0)).all():
        raise ArtifactError("validation labels must be 0 or 1")
    if not ((proba >= 0) & (proba <= 1)).all():
        raise ArtifactError("validation probabilities must lie in [0, 1]")
    return ids.astype(np.int64), y.astype(np.int64), proba


def _background(payload: dict[str, Any], n_train: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Distinct rows of nine integer scores in range, in lexicographic order, with positive
    integer counts adding up to the number of training rows."""
    b = _require(payload, "background", dict)
    n = len(_require(b, "rows", list))
    if n == 0:
        raise ArtifactError("background is empty")
    rows = _array(b["rows"], "background rows", (n, len(FEATURE_NAMES)))
    counts = _array(_require(b, "counts", list), "background counts", (n,))
    if not ((rows == np.round(rows)) & (rows >= SCORE_MIN) & (rows <= SCORE_MAX)).all():
        raise ArtifactError(f"background rows must be integer scores {SCORE_MIN}..{SCORE_MAX}")
    if not ((counts == np.round(counts)) & (counts >= 1)).all():
        raise ArtifactError("background counts must be positive integers")
    if counts.sum() != n_train:
        raise ArtifactError("background counts do not add up to n_train")
    unique = np.unique(rows, axis=0)  # sorted and distinct: equal to rows only if they are
    if unique.shape != rows.shape or not (unique == rows).all():
        raise ArtifactError("background rows must be distinct and in lexicographic order")
    return rows.astype(np.int64), counts.astype(np.int64)


def _conformal(payload: dict[str, Any], n_train: int) -> ConformalCalibration:
    c = _require(payload, "conformal", dict)
    method = _require(c, "method", str)
    if method not in CONFORMAL_METHODS:
        raise ArtifactError(f"conformal method must be one of {', '.join(CONFORMAL_METHODS)}")
    if _require(c, "score", str) != CONFORMAL_SCORE or _require(c, "mondrian", bool) is not True:
        raise ArtifactError(f"conformal scores must be class-conditional {CONFORMAL_SCORE!r}")
    folds, fold_seed = _require(c, "folds", int), _require(c, "fold_seed", int)
    if not 2 <= folds <= n_train or fold_seed < 0:
        raise ArtifactError("conformal folds or fold_seed are out of range")
    scores = _require(c, "scores", dict)
    if set(scores) != set(CLASS_NAMES):
        raise ArtifactError(f"conformal scores must name exactly {', '.join(CLASS_NAMES)}")
    per_class = [
        _array(_require(scores, name, list), f"conformal {name} scores", (len(scores[name]),))
        for name in CLASS_NAMES
    ]
    if sum(len(s) for s in per_class) != n_train:
        raise ArtifactError("cross-conformal scores must number one per training row")
    try:
        calibration = ConformalCalibration(method, folds, fold_seed, *per_class)
        calibration.classifier()
    except ValueError as exc:
        raise ArtifactError(f"conformal {exc}") from None
    return calibration


def _from_payload(payload: dict[str, Any]) -> Artifact:
    _check_header(payload)
    settings, t = _training(payload)
    network, scaler = _network(payload, settings.hidden)
    ids, y, proba = _validation(payload)
    n_train = _require(t, "n_train", int)
    background_rows, background_counts = _background(payload, n_train)
    threshold = float(_require(payload, "default_threshold", (int, float)))
    if not 0.0 <= threshold <= 1.0 or not math.isfinite(threshold):
        raise ArtifactError("default_threshold must lie in [0, 1]")
    metrics = _require(payload, "metrics", dict)
    return Artifact(
        network=network,
        scaler=scaler,
        training=settings,
        default_threshold=threshold,
        data_sha256=_require(t, "data_sha256", str),
        n_train=n_train,
        final_loss=float(_require(t, "final_loss", (int, float))),
        valid_sample_ids=ids,
        valid_y=y,
        valid_proba=proba,
        train_metrics=_require(metrics, "train", dict),
        valid_metrics=_require(metrics, "validation", dict),
        background_rows=background_rows,
        background_counts=background_counts,
        conformal=_conformal(payload, n_train),
        content_sha256=payload["content_sha256"],
    )
