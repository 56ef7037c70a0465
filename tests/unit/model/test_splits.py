"""The article's ordered split and the default seeded stratified split."""

import numpy as np
import pytest

from model.data import Dataset
from model.splits import make_split, seed_split, stratified_folds, stratified_split


def test_seed_split_is_the_articles(dataset: Dataset) -> None:
    train_idx, valid_idx = seed_split(len(dataset.y))
    np.testing.assert_array_equal(train_idx, np.arange(0, 500))
    np.testing.assert_array_equal(valid_idx, np.arange(501, 683))
    assert 500 not in train_idx
    assert 500 not in valid_idx


def test_seed_split_needs_enough_rows() -> None:
    with pytest.raises(ValueError, match="more than 501 rows"):
        seed_split(400)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_stratified_split_partitions_and_keeps_class_balance(dataset: Dataset, seed: int) -> None:
    train_idx, valid_idx = stratified_split(dataset.y, seed=seed)
    assert len(np.intersect1d(train_idx, valid_idx)) == 0
    np.testing.assert_array_equal(np.sort(np.r_[train_idx, valid_idx]), np.arange(683))
    # 20% of each class: round(0.2 * 444) benign + round(0.2 * 239) malignant
    assert len(valid_idx) == 89 + 48
    assert int(dataset.y[valid_idx].sum()) == 48


def test_stratified_split_is_deterministic_per_seed(dataset: Dataset) -> None:
    a = stratified_split(dataset.y, seed=1)
    b = stratified_split(dataset.y, seed=1)
    c = stratified_split(dataset.y, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_make_split_rejects_unknown_name(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown split 'random'"):
        make_split("random", dataset.y, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("folds", "seed"), [(2, 0), (5, 1), (10, 1)])
def test_stratified_folds_deal_each_class_evenly(dataset: Dataset, folds: int, seed: int) -> None:
    fold = stratified_folds(dataset.y, folds, seed)
    assert fold.shape == dataset.y.shape
    assert set(fold.tolist()) == set(range(folds))
    for cls in (0, 1):
        per_fold = np.bincount(fold[dataset.y == cls], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1
    np.testing.assert_array_equal(fold, stratified_folds(dataset.y, folds, seed))
    assert not np.array_equal(fold, stratified_folds(dataset.y, folds, seed + 1))


@pytest.mark.parametrize("folds", [0, 1, 4])
def test_stratified_folds_need_two_to_n_folds(folds: int) -> None:
    with pytest.raises(ValueError, match=r"folds must lie in 2\.\.3"):
        stratified_folds([0, 1, 0], folds, 0)
