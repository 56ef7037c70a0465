"""Calibration metrics against hand-computed values and scikit-learn's implementations."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss

from model.calibration import (
    brier_score,
    expected_calibration_error,
    log_loss,
    reliability,
)

Y = np.array([0, 0, 1, 1, 1, 0])
P = np.array([0.05, 0.15, 0.85, 0.95, 0.55, 0.45])


def test_brier_and_log_loss_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 500)
    y = (rng.uniform(size=500) < p).astype(int)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert log_loss(y, p) == pytest.approx(sklearn_log_loss(y, p), abs=1e-12)


def test_log_loss_stays_finite_at_saturated_wrong_answers() -> None:
    assert np.isfinite(log_loss([1, 0], [0.0, 1.0]))


def test_ece_by_hand() -> None:
    # bins: [0, .1): 0.05 (y 0); [.1, .2): 0.15 (y 0); [.4, .5): 0.45 (y 0); [.5, .6): 0.55 (y 1);
    # [.8, .9): 0.85 (y 1); [.9, 1]: 0.95 (y 1); each bin one row, weight 1/6
    gaps = [0.05, 0.15, 0.45, 0.45, 0.15, 0.05]
    assert expected_calibration_error(Y, P) == pytest.approx(sum(gaps) / 6, abs=1e-15)


def test_probability_one_falls_in_the_last_bin() -> None:
    r = reliability([1, 1], [1.0, 0.95])
    assert r.count.tolist() == [0] * 9 + [2]
    assert r.mean_p[-1] == pytest.approx(0.975)


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    y = [0, 0, 0, 1] * 5  # 25% positive, all predicted 0.25
    assert expected_calibration_error(y, [0.25] * 20) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    ("y", "p", "problem"),
    [
        ([0, 1], [0.5], "one length"),
        ([0, 2], [0.5, 0.5], "only 0 and 1"),
        ([0, 1], [0.5, 1.5], "probabilities"),
        ([0, 1], [0.5, float("nan")], "probabilities"),
        ([], [], "non-empty"),
    ],
)
def test_bad_input_is_rejected(y: list[float], p: list[float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        brier_score(y, p)
