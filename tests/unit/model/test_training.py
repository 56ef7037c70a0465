"""Cross-conformal calibration in `train`: out-of-fold scores, and a served network unchanged."""

import numpy as np
import pytest

from model.artifact import TrainingSettings
from model.data import Dataset
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from model.splits import make_split, stratified_folds
from model.training import out_of_fold_proba, train

QUICK = TrainingSettings(split="stratified", lr=0.05, iterations=300, hidden=15, seed=1)


def test_each_calibration_score_comes_from_a_network_that_never_saw_its_row(
    dataset: Dataset,
) -> None:
    train_idx, _ = make_split("stratified", dataset.y, QUICK.seed)
    X, y = dataset.X[train_idx], dataset.y[train_idx]
    proba = out_of_fold_proba(X, y, QUICK, folds=3, fold_seed=QUICK.seed)
    fold = stratified_folds(y, 3, QUICK.seed)
    for k in range(3):
        seen, held_out = fold != k, fold == k
        scaler = MinMaxScaler().fit(X[seen])
        net = TwoLayerNet(hidden=15, lr=0.05, iterations=300, seed=1)
        net.fit(scaler.transform(X[seen]), y[seen])
        np.testing.assert_array_equal(
            proba[held_out], net.predict_proba(scaler.transform(X[held_out]))
        )


def test_calibration_scores_are_one_minus_the_true_class_probability(dataset: Dataset) -> None:
    result = train(dataset, QUICK, calibration_folds=3)
    art = result.artifact
    train_idx, _ = make_split("stratified", dataset.y, QUICK.seed)
    y = dataset.y[train_idx]
    proba = out_of_fold_proba(dataset.X[train_idx], y, QUICK, folds=3, fold_seed=QUICK.seed)
    np.testing.assert_array_equal(art.conformal.benign, np.sort(1.0 - (1.0 - proba[y == 0])))
    np.testing.assert_array_equal(art.conformal.malignant, np.sort(1.0 - proba[y == 1]))
    assert (art.conformal.method, art.conformal.folds, art.conformal.fold_seed) == (
        "cross-conformal",
        3,
        1,
    )


@pytest.mark.slow
@pytest.mark.parametrize("folds", [2, 5])
def test_the_served_network_does_not_depend_on_the_calibration(
    dataset: Dataset, folds: int
) -> None:
    a = train(dataset, QUICK, calibration_folds=folds).artifact
    b = train(dataset, QUICK, calibration_folds=10).artifact
    assert a.network.W1_.tobytes() == b.network.W1_.tobytes()
    assert a.valid_proba.tobytes() == b.valid_proba.tobytes()
    assert a.valid_metrics == b.valid_metrics
    assert len(a.conformal.benign) + len(a.conformal.malignant) == a.n_train
