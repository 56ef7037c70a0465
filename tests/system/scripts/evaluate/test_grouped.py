"""scripts/evaluate/grouped.py: identical score vectors kept in one fold."""

import numpy as np

from model.data import Dataset
from scripts.evaluate.cv import stratified_splits
from scripts.evaluate.grouped import duplicate_groups, grouped_splits, twin_share


def test_grouped_folds_keep_identical_score_vectors_together(dataset: Dataset) -> None:
    groups = duplicate_groups(dataset.X)
    assert len(np.unique(groups)) == 449  # distinct score vectors among the 683 rows
    splits = grouped_splits(dataset, 5, 2, 0)
    assert len(splits) == 10
    for r in (0, 1):
        tests = [s.test for s in splits if s.repeat == r]
        np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(683))
    for s in splits:
        assert not np.isin(groups[s.test], groups[s.train]).any()
        assert abs(dataset.y[s.test].mean() - dataset.y.mean()) < 0.05  # still stratified
    assert twin_share(dataset, splits) == 0.0
    # ordinary stratified folds put an identical twin in training for about 40% of rows
    stratified = stratified_splits(dataset.y, 10, 5, 0)
    assert 0.35 < twin_share(dataset, stratified) < 0.45
