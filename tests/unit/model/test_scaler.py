"""Min-max scaler: fitted on training rows only, guarded against a zero range."""

import numpy as np
import pytest

from model.data import Dataset
from model.scaler import MinMaxScaler
from model.splits import stratified_split


def test_maps_training_range_to_unit_interval() -> None:
    X = np.array([[1.0, 10.0], [4.0, 5.0], [10.0, 1.0]])
    scaler = MinMaxScaler().fit(X)
    np.testing.assert_array_equal(scaler.min_, [1.0, 1.0])
    np.testing.assert_array_equal(scaler.max_, [10.0, 10.0])
    np.testing.assert_allclose(scaler.transform(X), [[0.0, 1.0], [1 / 3, 4 / 9], [1.0, 0.0]])


def test_fit_returns_self_and_learns_only_from_what_it_is_given(dataset: Dataset) -> None:
    train_idx, valid_idx = stratified_split(dataset.y, seed=1)
    # make a validation-only extreme: if the scaler saw validation rows, its bounds would move
    X = dataset.X.astype(float).copy()
    X[valid_idx[0]] = 100.0
    scaler = MinMaxScaler()
    assert scaler.fit(X[train_idx]) is scaler
    assert scaler.max_ is not None
    assert scaler.max_.max() == 10.0
    assert scaler.transform(X[valid_idx[:1]]).max() > 1.0  # unseen rows may leave [0, 1]


def test_zero_range_maps_to_zero_not_nan() -> None:
    X = np.array([[3.0, 1.0], [3.0, 2.0]])
    out = MinMaxScaler().fit(X).transform(X)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0])


def test_rejects_wrong_column_count() -> None:
    scaler = MinMaxScaler().fit(np.ones((3, 9)))
    with pytest.raises(ValueError, match="expected 9 feature columns, got 8"):
        scaler.transform(np.ones((2, 8)))


@pytest.mark.parametrize("bad", [np.ones(9), np.ones((0, 9)), np.ones((2, 3, 9))])
def test_rejects_non_2d_or_empty_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty 2-D"):
        MinMaxScaler().fit(bad)


def test_unfitted_scaler_refuses_to_transform() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxScaler().transform(np.ones((1, 9)))


@pytest.mark.parametrize(
    ("lo", "hi", "problem"),
    [([1.0, 2.0], [1.0], "same length"), ([2.0], [1.0], "must not exceed")],
)
def test_from_bounds_validates(lo: list[float], hi: list[float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MinMaxScaler.from_bounds(lo, hi)
