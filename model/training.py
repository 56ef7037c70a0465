"""Fit scaler and network on the training rows and package the result as an Artifact."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from model.artifact import REPORT_THRESHOLDS, Artifact, TrainingSettings, metrics_table
from model.data import Dataset
from model.network import ProgressCallback, TwoLayerNet
from model.scaler import MinMaxScaler
from model.shapley import distinct_rows
from model.splits import make_split


@dataclass
class TrainingResult:
    artifact: Artifact
    train_y: NDArray[np.int64]
    train_proba: NDArray[np.float64]
    loss_curve: list[tuple[int, float]]


def train(
    data: Dataset,
    settings: TrainingSettings,
    default_threshold: float = 0.5,
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    train_idx, valid_idx = make_split(settings.split, data.y, settings.seed)  # type: ignore[arg-type]
    # The scaler sees training rows only, so validation rows stay unseen data.
    scaler = MinMaxScaler().fit(data.X[train_idx])
    network = TwoLayerNet(
        hidden=settings.hidden, lr=settings.lr, iterations=settings.iterations, seed=settings.seed
    )
    network.fit(scaler.transform(data.X[train_idx]), data.y[train_idx], progress=progress)

    train_proba = network.predict_proba(scaler.transform(data.X[train_idx]))
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
        train_metrics=metrics_table(data.y[train_idx], train_proba, thresholds),
        valid_metrics=metrics_table(data.y[valid_idx], valid_proba, thresholds),
        background_rows=background_rows,
        background_counts=background_counts,
    )
    return TrainingResult(artifact, data.y[train_idx], train_proba, network.loss_curve_)
