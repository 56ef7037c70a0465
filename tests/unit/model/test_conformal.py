"""Conformal quantiles on hand-made score lists, and the sets they give."""

import math

import numpy as np
import pytest

from model.conformal import (
    ConformalClassifier,
    class_scores,
    conformal_quantile,
    conformal_rank,
    set_membership,
    sorted_quantile,
    summarize_sets,
)


@pytest.mark.parametrize(
    ("n", "confidence", "rank"),
    [
        (99, 0.95, 95),  # (99 + 1) x 0.95 = 95 exactly, not ceil(95.00000000000001) = 96
        (19, 0.95, 19),
        (20, 0.95, 20),  # 21 x 0.95 = 19.95
        (18, 0.95, 19),  # > n: no finite quantile
        (9, 0.9, 9),
        (98, 0.99, 99),  # 99 x 0.99 = 98.01: rank 99 > n
        (137, 0.99, 137),  # 138 x 0.99 = 136.62
    ],
)
def test_rank(n: int, confidence: float, rank: int) -> None:
    assert conformal_rank(n, confidence) == rank


def test_quantile_of_a_hand_made_list() -> None:
    scores = [0.7, 0.1, 0.4, 0.2, 0.9, 0.3, 0.5, 0.8, 0.6]  # n = 9, sorted 0.1 .. 0.9
    assert conformal_quantile(scores, 0.5) == 0.5  # ceil(10 x 0.5) = 5th smallest
    assert conformal_quantile(scores, 0.8) == 0.8  # ceil(8.0) = 8th
    assert conformal_quantile(scores, 0.81) == 0.9  # ceil(8.1) = 9th
    assert conformal_quantile(scores, 0.9) == 0.9  # ceil(9.0) = 9th = n
    assert conformal_quantile(scores, 0.91) == math.inf  # ceil(9.1) = 10 > n


def test_scores_are_one_minus_the_class_probability() -> None:
    np.testing.assert_allclose(class_scores([0.2, 0.9]), [[0.2, 0.8], [0.9, 0.1]])


def test_mondrian_calibrates_each_class_on_its_own_rows() -> None:
    # benign rows: p = 0.1, 0.2, 0.3 (scores s_benign = p); malignant rows: p = 0.9, 0.6, 0.4
    proba = [0.1, 0.2, 0.3, 0.9, 0.6, 0.4]
    y = [0, 0, 0, 1, 1, 1]
    model = ConformalClassifier(mondrian=True).fit(proba, y)
    np.testing.assert_allclose(model.scores_[0], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(model.scores_[1], [0.1, 0.4, 0.6])
    # confidence 0.5: k = ceil(4 x 0.5) = 2 -> q = [0.2, 0.4]
    np.testing.assert_allclose(model.quantiles(0.5), [0.2, 0.4])
    sets = model.predict_set([0.05, 0.3, 0.65, 0.95], 0.5)
    # p=0.05: s = [0.05, 0.95] -> benign only; p=0.3: [0.3, 0.7] -> neither (empty);
    # p=0.65: [0.65, 0.35] -> malignant only; p=0.95: [0.95, 0.05] -> malignant only
    assert sets.tolist() == [[True, False], [False, False], [False, True], [False, True]]
    # confidence 0.8: k = ceil(3.2) = 4 > 3 -> both quantiles infinite, every set holds both
    assert model.predict_set([0.5], 0.8).tolist() == [[True, True]]
    np.testing.assert_allclose(model.max_confidence(), [0.75, 0.75])


def test_marginal_pools_the_scores() -> None:
    model = ConformalClassifier(mondrian=False).fit([0.1, 0.2, 0.9, 0.6], [0, 0, 1, 1])
    np.testing.assert_allclose(model.scores_[0], [0.1, 0.1, 0.2, 0.4])
    assert model.scores_[0] is model.scores_[1]


def test_coverage_holds_per_class_on_exchangeable_rows() -> None:
    """Class-conditional coverage on simulated scores where one class is much harder."""
    rng = np.random.default_rng(1)
    covered: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(200):
        y = (rng.uniform(size=400) < 0.35).astype(int)
        # malignant rows get noisier probabilities than benign rows
        p = np.where(y == 1, rng.beta(4, 2, 400), rng.beta(1, 8, 400))
        model = ConformalClassifier().fit(p[:200], y[:200])
        sets = model.predict_set(p[200:], 0.9)
        for c in (0, 1):
            rows = y[200:] == c
            covered[c].append(sets[rows, c].mean())
    for c in (0, 1):
        assert np.mean(covered[c]) >= 0.9 - 0.01


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.1, 1.5])
def test_confidence_outside_the_open_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        conformal_rank(10, confidence)


def test_bad_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        ConformalClassifier().fit([0.1, 0.2], [0, 2])


def test_one_row_membership_is_predict_set_for_every_probability() -> None:
    rng = np.random.default_rng(3)
    proba = np.r_[rng.uniform(size=2000), 0.0, 1.0, 0.5, 1e-17, 1 - 1e-16]
    model = ConformalClassifier().fit(rng.uniform(size=300), rng.integers(0, 2, 300))
    for confidence in (0.5, 0.9, 0.95, 0.99):
        q = model.quantiles(confidence)
        expected = model.predict_set(proba, confidence)
        one_by_one = [set_membership(p, q[0], q[1]) for p in proba.tolist()]
        assert one_by_one == [tuple(row) for row in expected.tolist()]
    # the calibration scores themselves, where the comparison is at its tightest
    for s in model.scores_[1].tolist():
        assert set_membership(1.0 - s, math.inf, s)[1]


def test_sorted_quantile_is_conformal_quantile_without_the_sort() -> None:
    scores = sorted([0.7, 0.1, 0.4, 0.2, 0.9, 0.3, 0.5, 0.8, 0.6])
    for confidence in (0.1, 0.5, 0.8, 0.81, 0.9, 0.91):
        assert sorted_quantile(scores, confidence) == conformal_quantile(scores, confidence)


def test_stored_scores_rebuild_the_fitted_classifier() -> None:
    fitted = ConformalClassifier().fit([0.1, 0.2, 0.3, 0.9, 0.6, 0.4], [0, 0, 0, 1, 1, 1])
    rebuilt = ConformalClassifier.from_sorted_scores(*fitted.scores_)
    assert rebuilt.mondrian
    for confidence in (0.5, 0.7, 0.8):
        np.testing.assert_array_equal(rebuilt.quantiles(confidence), fitted.quantiles(confidence))


@pytest.mark.parametrize(
    ("benign", "malignant", "problem"),
    [
        ([], [0.1], "benign scores must be a non-empty 1-D array"),
        ([[0.1]], [0.1], "benign scores must be a non-empty 1-D array"),
        ([0.1], [0.3, 0.2], "malignant scores must be sorted ascending"),
        ([0.1, math.nan], [0.1], "benign scores must be finite and within"),
        ([0.1], [0.2, 1.5], "malignant scores must be finite and within"),
        ([-0.1], [0.2], "benign scores must be finite and within"),
    ],
)
def test_malformed_stored_scores_are_rejected(
    benign: list[float], malignant: list[float], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        ConformalClassifier.from_sorted_scores(benign, malignant)


def test_set_summary_counts_coverage_per_class_and_set_sizes() -> None:
    sets = [[True, False], [True, True], [False, False], [False, True], [True, False]]
    y = [0, 0, 0, 1, 1]
    s = summarize_sets(sets, y, 0.9)
    assert s.coverage == (2 / 3, 1 / 2)
    assert s.n == (3, 2)
    assert (s.singleton, s.both, s.empty) == (3 / 5, 1 / 5, 1 / 5)
    assert math.isnan(summarize_sets(sets[:3], y[:3], 0.9).coverage[1])
