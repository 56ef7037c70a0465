"""What every part shares: the names and defaults, the network's settings, a split, a fitted
model's answer, and fitting the scaler and the network on a training fold only."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.defaults import SERVED
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler

Indices = NDArray[np.int64]
Scores = NDArray[np.float64]
Progress = Callable[[str, int, int], None]
METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "sensitivity", "specificity")
CALIBRATION: tuple[str, ...] = ("brier", "log_loss", "ece")
TITLES: dict[str, str] = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "brier": "Brier",
    "log_loss": "log loss",
    "ece": "ECE",
}
NET = "TwoLayerNet"
LR_NAME = "LogisticRegression"
PARTS: tuple[str, ...] = ("cv", "grouped", "temporal", "conformal", "scaling", "regularize")
DEFAULT_FOLDS = 10
DEFAULT_REPEATS = 5
DEFAULT_CV_SEED = 0
DEFAULT_CALIBRATION_FRACTION = 0.25


@dataclass(frozen=True)
class NetConfig:
    lr: float = SERVED.lr
    iterations: int = SERVED.iterations
    hidden: int = SERVED.hidden
    seed: int = SERVED.seed
    weight_decay: float = 0.0
    early_stopping: bool = False

    @property
    def label(self) -> str:
        text = f"{NET} 9-{self.hidden}-1 (lr {self.lr:g}, {self.iterations} it, seed {self.seed}"
        if self.weight_decay:
            text += f", weight decay {self.weight_decay:g}"
        if self.early_stopping:
            text += ", early stopping"
        return text + ")"

    @property
    def variant(self) -> str:
        """The regularisation alone: what the nested choice picks between."""
        parts = [f"weight decay {self.weight_decay:g}"] if self.weight_decay else []
        parts += ["early stopping"] if self.early_stopping else []
        return ", ".join(parts) or "none (served)"

    def network(self) -> TwoLayerNet:
        return TwoLayerNet(
            hidden=self.hidden,
            lr=self.lr,
            iterations=self.iterations,
            seed=self.seed,
            weight_decay=self.weight_decay,
            early_stopping=self.early_stopping,
        )


@dataclass(frozen=True)
class Split:
    """One held-out fold: which repeat and fold it is, its training and test row indices."""

    repeat: int
    fold: int
    train: Indices
    test: Indices


@dataclass(frozen=True)
class Scored:
    """A fitted model's answer on the test rows: P(malignant), the score its decision rule
    thresholds (and ROC AUC ranks), and that threshold."""

    proba: Scores
    score: Scores
    threshold: float


Record = dict[str, Any]


def fit_scaler(X_train: NDArray[np.int64]) -> MinMaxScaler:
    """The fold's scaler, fitted on its training rows only."""
    return MinMaxScaler().fit(X_train)


def net_scores(
    Xs_train: Scores, y_train: NDArray[np.int64], Xs_test: Scores, config: NetConfig
) -> Scores:
    return config.network().fit(Xs_train, y_train).predict_proba(Xs_test)
