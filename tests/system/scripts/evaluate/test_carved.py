"""scripts/evaluate/carved.py: the calibration rows come from the training fold only."""

import math

import numpy as np

from model.data import Dataset
from scripts.evaluate.carved import carve_calibration
from scripts.evaluate.cv import stratified_splits


def test_calibration_rows_come_from_the_training_fold_only(dataset: Dataset) -> None:
    s = stratified_splits(dataset.y, 10, 1, 0)[0]
    proper, calib = carve_calibration(dataset.y[s.train], 0.25, seed=0)
    assert len(np.intersect1d(proper, calib)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([proper, calib])), np.arange(len(s.train)))
    assert len(calib) == math.ceil(0.25 * len(s.train))
    rate = dataset.y[s.train].mean()
    assert abs(dataset.y[s.train][calib].mean() - rate) < 0.01
    assert not np.isin(s.train[calib], s.test).any()
