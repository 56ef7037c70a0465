"""Fit scaler and network on the training rows and package the result as an Artifact.

Conformal calibration is cross-conformal on the training rows: the training rows are dealt into
`calibration_folds` stratified folds; for each fold a network with the served settings (and its
own scaler) is trained on the other folds and scores the held-out fold. Those out-of-fold
probabilities of every training row, one per row from a network that never saw it, are the
calibration scores of the network trained on all of them. The served network and the validation
rows are the same as without calibration; docs/answers.md ("Where the calibration scores come
from") compares this with a three-way split.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.artifact import (
    CROSS_CONFORMAL,
    REPORT_THRESHOLDS,
    Artifact,
    ConformalCalibration,
    TrainingSettings,
    metrics_table,
)
from model.conformal import ConformalClassifier
from model.data import Dataset
from model.network import ProgressCallback, TwoLayerNet
from model.scaler import MinMaxScaler
from model.shapley import distinct_rows
from model.splits import make_split, stratified_folds

DEFAULT_CALIBRATION_FOLDS: Final = 10
FoldCallback = Callable[[int, int], None]


@dataclass
class TrainingResult:
    artifact: Artifact
    train_y: NDArray[np.int64]
    train_proba: NDArray[np.float64]
    loss_curve: list[tuple[int, float]]


def fit_network(
    X: NDArray[np.int64],
    y: NDArray[np.int64],
    settings: TrainingSettings,
    progress: ProgressCallback | None = None,
) -> tuple[MinMaxScaler, TwoLayerNet]:
    """A scaler fitted on these rows only, and the network trained on them with `settings`."""
    scaler = MinMaxScaler().fit(X)
    network = TwoLayerNet(
        hidden=settings.hidden, lr=settings.lr, iterations=settings.iterations, seed=settings.seed
    )
    network.fit(scaler.transform(X), y, progress=progress)
    return scaler, network


def out_of_fold_proba(
    X: NDArray[np.int64],
    y: NDArray[np.int64],
    settings: TrainingSettings,
    folds: int,
    fold_seed: int,
    on_fold: FoldCallback | None = None,
) -> NDArray[np.float64]:
    """P(malignant) of every row from the network trained on the other folds."""
    fold = stratified_folds(y, folds, fold_seed)
    proba = np.empty(len(y), dtype=np.float64)
    for k in range(folds):
        held_out = fold == k
        scaler, network = fit_network(X[~held_out], y[~held_out], settings)
        proba[held_out] = network.predict_proba(scaler.transform(X[held_out]))
        if on_fold is not None:
            on_fold(k + 1, folds)
    return proba


def cross_conformal(
    X: NDArray[np.int64],
    y: NDArray[np.int64],
    settings: TrainingSettings,
    folds: int = DEFAULT_CALIBRATION_FOLDS,
    on_fold: FoldCallback | None = None,
) -> ConformalCalibration:
    """The calibration scores of the network trained on (X, y), from its out-of-fold twins;
    the folds are seeded with the training seed."""
    proba = out_of_fold_proba(X, y, settings, folds, settings.seed, on_fold)
    fitted = ConformalClassifier(mondrian=True).fit(proba, y)
    benign, malignant = fitted.scores_
    return ConformalCalibration(CROSS_CONFORMAL, folds, settings.seed, benign, malignant)


def train(
    data: Dataset,
    settings: TrainingSettings,
    default_threshold: float = 0.5,
    progress: ProgressCallback | None = None,
    calibration_folds: int = DEFAULT_CALIBRATION_FOLDS,
    on_fold: FoldCallback | None = None,
) -> TrainingResult:
    train_idx, valid_idx = make_split(settings.split, data.y, settings.seed)  # type: ignore[arg-type]
    X_train, y_train = data.X[train_idx], data.y[train_idx]
    # The scaler sees training rows only, so validation rows stay unseen data.
    scaler, network = fit_network(X_train, y_train, settings, progress)
    conformal = cross_conformal(X_train, y_train, settings, calibration_folds, on_fold)

    train_proba = network.predict_proba(scaler.transform(X_train))
    valid_proba = network.predict_proba(scaler.transform(data.X[valid_idx]))
    thresholds = sorted({*REPORT_THRESHOLDS, default_threshold})
    background_rows, background_counts = distinct_rows(data.X[train_idx])
    artifact = Artifact(
        network=network,
        scaler=scaler,
        training=settings,
        default_threshold=default_threshold,
        data_sha256=data.sha256,
        n_train=len(train_idx),
        final_loss=network.loss_curve_[-1][1],
        valid_sample_ids=data.sample_ids[valid_idx],
        valid_y=data.y[valid_idx],
        valid_proba=valid_proba,
        train_metrics=metrics_table(y_train, train_proba, thresholds),
        valid_metrics=metrics_table(data.y[valid_idx], valid_proba, thresholds),
        background_rows=background_rows,
        background_counts=background_counts,
        conformal=conformal,
    )
    return TrainingResult(artifact, y_train, train_proba, network.loss_curve_)
