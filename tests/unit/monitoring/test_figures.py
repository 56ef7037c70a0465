"""Every monitoring figure against an independent recomputation: scikit-learn, SciPy, the
pairwise definitions, and the model package's own validated figures."""

import json
import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import optimize, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from app.monitoring.figures import (
    FIGURE_NAMES,
    UNDEFINED,
    Z95,
    Cases,
    Estimate,
    calibration_intercept,
    calibration_slope,
    compute_figures,
    delong_components,
    ece,
    logit,
    roc_auc,
    validated_figures,
    wilson,
)
from model.artifact import Artifact
from model.calibration import expected_calibration_error
from model.conformal import DEFAULT_CONFIDENCE, summarize_sets
from model.metrics import evaluate

CaseArrays = tuple[NDArray[Any], NDArray[Any], NDArray[Any]]


def test_z_is_the_normal_quantile() -> None:
    assert stats.norm.ppf(0.975) == pytest.approx(Z95, abs=1e-15)


@pytest.fixture(scope="module")
def cases() -> tuple[NDArray[np.float64], NDArray[np.int8], NDArray[np.int8]]:
    """Outcomes that depend on the probabilities (so AUC and slope are informative), probabilities
    rounded to two digits so that there are ties, and random set codes."""
    rng = np.random.default_rng(7)
    p = np.round(rng.beta(0.6, 0.9, 400), 2)
    y = (rng.random(400) < np.clip(p * 1.1 - 0.03, 0, 1)).astype(np.int8)
    codes = rng.integers(0, 4, 400).astype(np.int8)
    return p, y, codes


# -- Wilson -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 20), (3, 20), (19, 20), (48, 48), (7, 9)])
def test_wilson_bounds_are_the_roots_of_the_score_test(k: int, n: int) -> None:
    # Wilson's interval is where the score test is exactly on its edge:
    # (k/n - pi)^2 = z^2 pi (1 - pi) / n, a quadratic in pi.
    phat, z2 = k / n, Z95**2
    roots = np.sort(np.roots([1 + z2 / n, -(2 * phat + z2 / n), phat**2]).real)
    est = wilson(k, n)
    assert est.value == phat
    assert est.lower == pytest.approx(max(roots[0], 0.0), abs=1e-12)
    assert est.upper == pytest.approx(min(roots[1], 1.0), abs=1e-12)


def test_wilson_of_nothing_is_undefined() -> None:
    assert wilson(0, 0) == UNDEFINED


# -- ROC AUC ----------------------------------------------------------------------------------
def test_auc_equals_sklearn_with_ties(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    assert roc_auc(p, y).value == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_delong_components_equal_the_pairwise_kernel(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    pos, neg = p[y == 1], p[y == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = delong_components(pos, neg)
    np.testing.assert_allclose(v10, kernel.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(v01, kernel.mean(axis=0), rtol=0, atol=1e-12)


def test_auc_interval_is_delong_on_the_logit_scale(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    pos, neg = p[y == 1], p[y == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = kernel.mean()
    var = np.var(kernel.mean(axis=1), ddof=1) / len(pos) + np.var(kernel.mean(0), ddof=1) / len(neg)
    se_logit = math.sqrt(var) / (auc * (1 - auc))
    low, high = stats.norm.interval(0.95, loc=math.log(auc / (1 - auc)), scale=se_logit)
    est = roc_auc(p, y)
    assert est.lower == pytest.approx(1 / (1 + math.exp(-low)), abs=1e-12)
    assert est.upper == pytest.approx(1 / (1 + math.exp(-high)), abs=1e-12)


def test_auc_undefined_cases() -> None:
    assert roc_auc(np.array([0.1, 0.2]), np.array([1, 1], np.int8)) == UNDEFINED
    perfect = roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], np.int8))
    assert perfect == Estimate(1.0, None, None)  # DeLong's variance is 0 there


# -- Brier, ECE -------------------------------------------------------------------------------
def test_brier_equals_sklearn_and_its_interval_is_a_mean_s(
    cases: CaseArrays,
) -> None:
    p, y, codes = cases
    fig = compute_figures(Cases.of(p, y, codes, 0.5))
    assert fig.brier.value == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    sq = (p - y) ** 2
    low, high = stats.norm.interval(0.95, loc=sq.mean(), scale=stats.sem(sq))
    assert fig.brier.lower == pytest.approx(low, abs=1e-12)
    assert fig.brier.upper == pytest.approx(high, abs=1e-12)


def test_ece_is_the_artifacts_definition(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    est = ece(p, y)
    assert est.value == expected_calibration_error(y, p)
    assert est.lower is not None
    assert est.upper is not None
    assert 0.0 <= est.lower < est.upper <= 1.0


def case_bootstrap(p: NDArray[np.float64], y: NDArray[np.int8], replicates: int) -> Any:
    """The textbook percentile bootstrap: resample the cases, recompute ECE each time."""
    rng = np.random.default_rng(99)
    picks = rng.integers(0, len(p), size=(replicates, len(p)))
    return np.quantile([expected_calibration_error(y[i], p[i]) for i in picks], [0.025, 0.975])


@pytest.mark.slow
@pytest.mark.parametrize(("n", "flip"), [(30, 0.0), (200, 0.0), (200, 0.1), (1000, 0.0)])
def test_ece_interval_is_the_case_bootstrap_s(artifact: Artifact, n: int, flip: float) -> None:
    """Drawn per cell, the bootstrap's percentiles are those of resampling the cases, within
    the Monte Carlo error of both (measured: within 7% of the width at n = 20 to 1,000)."""
    rng = np.random.default_rng(n)
    picked = rng.integers(0, len(artifact.valid_proba), n)
    p = artifact.valid_proba[picked]
    y = artifact.valid_y[picked].astype(np.int8)
    y[(y == 0) & (rng.random(n) < flip)] = 1
    est = ece(p, y)
    low, high = case_bootstrap(p, y, 2000)
    tolerance = 0.1 * (high - low)
    assert est.lower == pytest.approx(low, abs=tolerance)
    assert est.upper == pytest.approx(high, abs=tolerance)
    assert est == ece(p.copy(), y.copy())  # a fixed seed: the same cases, the same interval


def test_ece_interval_of_many_cases_holds_its_value() -> None:
    """At 100,000 cases (what it costs: `python -m scripts.monitoring_cost`)."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 100_000)
    y = (rng.random(100_000) < p).astype(np.int8)
    est = ece(p, y)
    assert est.lower is not None
    assert est.value is not None
    assert est.upper is not None
    assert est.lower <= est.value <= est.upper


# -- logistic recalibration -------------------------------------------------------------------
def test_slope_equals_sklearn_unpenalised_logistic_regression(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    x = logit(p)
    model = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000)
    model.fit(x[:, None], y)
    est = calibration_slope(p, y)
    assert est.value == pytest.approx(model.coef_[0, 0], abs=1e-9)
    # the Wald interval from the observed information at sklearn's fit
    mu = model.predict_proba(x[:, None])[:, 1]
    design = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(design.T @ (design * (mu * (1 - mu))[:, None]))
    half = Z95 * math.sqrt(cov[1, 1])
    assert est.lower == pytest.approx(model.coef_[0, 0] - half, abs=1e-8)
    assert est.upper == pytest.approx(model.coef_[0, 0] + half, abs=1e-8)


def test_intercept_solves_its_score_equation(
    cases: CaseArrays,
) -> None:
    p, y, _ = cases
    offset = logit(p)

    def score(a: float) -> float:
        return float(np.sum(y - 1 / (1 + np.exp(-(a + offset)))))

    root = optimize.brentq(score, -10, 10, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    mu = 1 / (1 + np.exp(-(root + offset)))
    half = Z95 / math.sqrt(np.sum(mu * (1 - mu)))
    est = calibration_intercept(p, y)
    assert est.value == pytest.approx(root, abs=1e-12)
    assert est.lower == pytest.approx(root - half, abs=1e-12)
    assert est.upper == pytest.approx(root + half, abs=1e-12)


def test_a_calibrated_model_has_intercept_0_and_slope_1() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.random(20000) < p).astype(np.int8)
    intercept, slope = calibration_intercept(p, y), calibration_slope(p, y)
    assert intercept.lower is not None
    assert intercept.upper is not None
    assert slope.lower is not None
    assert slope.upper is not None
    assert intercept.lower < 0.0 < intercept.upper
    assert slope.lower < 1.0 < slope.upper


def test_separated_outcomes_have_no_slope() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.3, 0.7, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1], np.int8)  # quasi-complete: the tie at 0.3 is the boundary
    assert calibration_slope(p, y) == UNDEFINED
    assert calibration_intercept(p, y).value is not None


def test_probabilities_of_exactly_0_and_1_are_clipped() -> None:
    p = np.array([0.0, 1.0, 0.3, 0.6, 0.2, 0.9])
    y = np.array([0, 1, 1, 0, 0, 1], np.int8)
    assert np.isfinite(logit(p)).all()
    assert calibration_slope(p, y).value is not None


# -- the threshold figures, coverage, refer rate ----------------------------------------------
def test_threshold_figures_equal_model_metrics(
    cases: CaseArrays,
) -> None:
    p, y, codes = cases
    fig = compute_figures(Cases.of(p, y, codes, 0.3))
    ref = evaluate(y, p, 0.3)
    cm = ref.confusion
    assert fig.sensitivity.value == ref.sensitivity
    assert fig.specificity.value == ref.specificity
    assert fig.ppv.value == ref.precision
    assert fig.npv.value == cm.tn / (cm.tn + cm.fn)
    assert (fig.n_benign, fig.n_malignant) == (cm.tn + cm.fp, cm.tp + cm.fn)


def test_coverage_and_refer_rate(cases: CaseArrays) -> None:
    p, y, codes = cases
    atypical = np.arange(len(p)) % 7 == 0
    fig = compute_figures(Cases.of(p, y, codes, 0.5, atypical))
    members = np.column_stack([(codes & 1) > 0, (codes & 2) > 0])
    summary = summarize_sets(members, y, 0.95)
    assert (fig.coverage_benign.value, fig.coverage_malignant.value) == summary.coverage
    singleton_class = (codes == 1) | (codes == 2)
    assert fig.refer_rate.value == np.mean(~singleton_class | atypical)


def test_per_case_thresholds() -> None:
    p = np.array([0.3, 0.3, 0.6, 0.1])
    y = np.array([1, 1, 1, 0], np.int8)
    fig = compute_figures(Cases.of(p, y, [1, 2, 2, 1], [0.2, 0.5, 0.5, 0.5]))
    assert fig.sensitivity.value == 2 / 3  # 0.3 > 0.2 called, 0.3 at 0.5 missed, 0.6 called


# -- against the artifact ---------------------------------------------------------------------
def test_validated_figures_are_the_artifacts(artifact: Artifact) -> None:
    fig = validated_figures(artifact)
    ref = artifact.validation_metrics()
    assert fig.n == ref.n
    assert fig.sensitivity.value == ref.sensitivity
    assert fig.specificity.value == ref.specificity
    assert fig.ppv.value == ref.precision
    assert fig.roc_auc.value == pytest.approx(ref.roc_auc, abs=1e-15)
    cal = artifact.calibration_metrics()
    assert fig.brier.value == cal.brier_score
    assert fig.ece.value == cal.ece
    sets = artifact.validation_sets(DEFAULT_CONFIDENCE)
    assert (fig.coverage_benign.value, fig.coverage_malignant.value) == sets.coverage
    assert fig.refer_rate.value == pytest.approx(sets.both + sets.empty, abs=1e-15)


# -- edge cases -------------------------------------------------------------------------------
def test_no_cases_gives_every_figure_undefined() -> None:
    fig = compute_figures(Cases.of([], [], [], 0.5))
    assert fig.n == 0
    assert all(fig.estimates()[name] == UNDEFINED for name in FIGURE_NAMES)
    json.dumps(fig.as_dict(), allow_nan=False)


def test_one_class_only_leaves_its_intervals_undefined_never_nan() -> None:
    fig = compute_figures(Cases.of([0.1, 0.2, 0.05], [0, 0, 0], [1, 1, 3], 0.5))
    assert fig.sensitivity == UNDEFINED
    assert fig.roc_auc == UNDEFINED
    assert fig.calibration_slope == UNDEFINED
    assert fig.calibration_intercept == UNDEFINED
    assert fig.specificity.value == 1.0
    json.dumps(fig.as_dict(), allow_nan=False)


def test_one_case() -> None:
    fig = compute_figures(Cases.of([0.9], [1], [2], 0.5))
    assert fig.brier.lower is None
    assert fig.ece.lower is None
    json.dumps(fig.as_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("p", "y", "codes", "t"),
    [
        ([0.5, float("nan")], [0, 1], [1, 1], 0.5),
        ([0.5, 1.5], [0, 1], [1, 1], 0.5),
        ([0.5, 0.5], [0, 2], [1, 1], 0.5),
        ([0.5, 0.5], [0, 1], [1, 4], 0.5),
        ([0.5, 0.5], [0, 1], [1, 1], 1.5),
        ([0.5, 0.5], [0], [1, 1], 0.5),
    ],
)
def test_bad_cases_are_refused(p: list[float], y: list[int], codes: list[int], t: float) -> None:
    with pytest.raises(ValueError, match="must"):
        Cases.of(p, y, codes, t)


def test_the_intercept_of_confident_benign_answers_that_were_malignant_is_found() -> None:
    """0.0031 is what the model answers for a row of all 1s; 20 of 21 such cases turned out
    malignant (the miscalibration monitoring is for). Newton's first full step went to an
    intercept of about 330, where every probability rounds to 1 and the information is
    singular; the answer is finite: log(20) - logit(0.0031)."""
    p = np.full(21, 0.003102073675818234)
    y = np.array([1] * 20 + [0], dtype=np.int8)
    estimate = calibration_intercept(p, y)
    assert estimate.value == pytest.approx(np.log(20) - np.log(p[0] / (1 - p[0])), abs=1e-6)
    compute_figures(Cases.of(p, y, np.ones(21), 0.2))  # what /monitoring runs
