"""Drift: the statistics against SciPy, the calibrated false-alarm rate on fresh simulations and
on a population the reference was sampled from, and the textbook defaults measured beside it."""

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from app.monitoring.drift import (
    DRIFT_NAMES,
    SHARE,
    DriftDetector,
    Reference,
    simulate,
)
from model.artifact import Artifact
from model.data import Dataset
from model.features import FEATURE_NAMES

WINDOW = 200
LEVEL = 0.01


@pytest.fixture(scope="module")
def detector(artifact: Artifact) -> DriftDetector:
    return DriftDetector.from_artifact(artifact, window=WINDOW, false_alarm=LEVEL)


@pytest.fixture(scope="module")
def training_rows(artifact: Artifact) -> NDArray[np.int64]:
    return np.repeat(artifact.background_rows, artifact.background_counts, axis=0)


def binomial_ceiling(n: int, level: float) -> int:
    """The most alarms n independent checks at `level` give with probability 0.999."""
    return int(stats.binom.ppf(0.999, n, level))


def test_statistics_equal_scipy_contingency_tests(
    detector: DriftDetector, training_rows: NDArray[np.int64], artifact: Artifact
) -> None:
    rng = np.random.default_rng(5)
    window = training_rows[rng.integers(0, len(training_rows), WINDOW)]
    window[: WINDOW // 4, 5] = 10  # some drift, so the statistics are not all small
    calls = artifact.predict_proba(window) > detector.threshold
    report = detector.report(window, calls)
    reference_calls = artifact.predict_proba(training_rows) > detector.threshold
    for j, name in enumerate(FEATURE_NAMES):
        table = np.array(
            [
                np.bincount(window[:, j] - 1, minlength=10),
                np.bincount(training_rows[:, j] - 1, minlength=10),
            ]
        )
        table = table[:, table.sum(axis=0) > 0]
        chi2 = stats.chi2_contingency(table, correction=False).statistic
        assert report.statistics[name] == pytest.approx(chi2, rel=1e-12)
    # the two-proportion z squared is the 2 x 2 table's chi-square
    table = np.array(
        [
            [calls.sum(), WINDOW - calls.sum()],
            [reference_calls.sum(), len(training_rows) - reference_calls.sum()],
        ]
    )
    chi2 = stats.chi2_contingency(table, correction=False).statistic
    assert report.statistics[SHARE] ** 2 == pytest.approx(chi2, rel=1e-12)
    assert report.alarms["bare_nuclei"]


def test_false_alarms_on_fresh_simulations_are_within_the_level(detector: DriftDetector) -> None:
    fresh = simulate(detector.reference, WINDOW, 20000, seed=99)
    fired = int((fresh > detector.thresholds).any(axis=1).sum())
    assert fired <= binomial_ceiling(20000, LEVEL)
    assert fired > 0  # the thresholds are not so high that nothing can fire


@pytest.mark.slow
def test_false_alarms_on_new_samples_of_the_population(
    dataset: Dataset, artifact: Artifact
) -> None:
    # The data set plays the population: a reference of the training rows' size is sampled from
    # it, the detector calibrated on that reference alone, and windows drawn afresh from the
    # population. This checks the bootstrap, not only its own simulation.
    rng = np.random.default_rng(17)
    calls = artifact.predict_proba(dataset.X) > artifact.default_threshold
    fired = checks = 0
    for _ in range(4):
        sample = rng.choice(len(dataset.X), artifact.n_train, replace=False)
        rows, inverse, counts = np.unique(
            dataset.X[sample], axis=0, return_inverse=True, return_counts=True
        )
        called = np.zeros(len(rows), dtype=bool)
        called[inverse.ravel()] = calls[sample]
        detector = DriftDetector(Reference(rows, counts, called), window=WINDOW, simulations=5000)
        for _ in range(250):
            window = rng.integers(0, len(dataset.X), WINDOW)
            fired += detector.report(dataset.X[window], calls[window]).any_alarm
            checks += 1
    assert fired <= binomial_ceiling(checks, LEVEL)


@pytest.mark.slow
def test_textbook_defaults_misfire_where_the_calibrated_test_does_not(
    detector: DriftDetector, training_rows: NDArray[np.int64], artifact: Artifact
) -> None:
    """Windows of 200 drawn from the training rows themselves: no drift at all."""
    rng = np.random.default_rng(23)
    reference_share = np.stack(
        [np.bincount(training_rows[:, j] - 1, minlength=10) / len(training_rows) for j in range(9)]
    )
    psi_any = ks_rejections = ks_tests = chi2_any = ours = 0
    n = 300
    for _ in range(n):
        window = training_rows[rng.integers(0, len(training_rows), WINDOW)]
        share = np.stack([np.bincount(window[:, j] - 1, minlength=10) / WINDOW for j in range(9)])
        # PSI with the usual 1e-4 floor for empty bins, alarm above 0.1
        r, w = np.maximum(reference_share, 1e-4), np.maximum(share, 1e-4)
        psi_any += bool(((w - r) * np.log(w / r)).sum(axis=1).max() > 0.1)
        for j in range(9 if ks_tests < 900 else 0):  # 900 KS tests are enough, and slow
            ks_rejections += int(stats.ks_2samp(window[:, j], training_rows[:, j]).pvalue < 0.05)
            ks_tests += 1
        # chi-square against the reference shares, asymptotic p-values, Bonferroni over nine
        p_values = [
            stats.chisquare(
                np.bincount(window[:, j] - 1, minlength=10)[reference_share[j] > 0],
                WINDOW * reference_share[j][reference_share[j] > 0],
            ).pvalue
            for j in range(9)
        ]
        chi2_any += min(p_values) < LEVEL / 9
        calls = artifact.predict_proba(window) > detector.threshold
        ours += detector.report(window, calls).any_alarm
    # PSI > 0.1 fires on about half of these windows (measured: 46% at 200 rows)
    assert psi_any / n > 0.25
    # the KS test's 5% is not its rate on tied scores: it rejects about ten times less often
    assert ks_rejections / ks_tests < 0.02
    # the asymptotic chi-square, even Bonferroni-corrected to 1% over the nine, fires more
    assert chi2_any / n > LEVEL
    assert ours <= binomial_ceiling(n, LEVEL)


def test_a_shift_in_one_score_is_named(
    detector: DriftDetector, dataset: Dataset, artifact: Artifact
) -> None:
    rng = np.random.default_rng(29)
    rows = dataset.X[rng.integers(0, len(dataset.X), WINDOW)].copy()
    column = FEATURE_NAMES.index("mitoses")
    rows[:, column] = np.minimum(rows[:, column] + 3, 10)
    report = detector.report(rows, artifact.predict_proba(rows) > detector.threshold)
    assert report.alarms["mitoses"]
    assert report.any_alarm


def test_the_window_fills_before_a_check(artifact: Artifact, dataset: Dataset) -> None:
    detector = DriftDetector.from_artifact(artifact, window=50, simulations=1000)
    p = artifact.predict_proba(dataset.X)
    for i in range(49):
        detector.add(dataset.X[i].tolist(), float(p[i]))
    assert detector.check() is None
    detector.add(dataset.X[49].tolist(), float(p[49]))
    report = detector.check()
    assert report is not None
    assert set(report.statistics) == set(DRIFT_NAMES)
    assert report.predicted_malignant_share == np.mean(p[:50] > detector.threshold)
    detector.add_rows(dataset.X[100:400], p[100:400])
    assert len(detector) == 50
    again = detector.check()
    assert again is not None
    assert again.predicted_malignant_share == np.mean(p[350:400] > detector.threshold)
    detector.clear()
    assert detector.check() is None


@pytest.mark.slow
def test_calibration_is_seeded_and_quick(artifact: Artifact, detector: DriftDetector) -> None:
    again = DriftDetector.from_artifact(artifact, window=WINDOW, false_alarm=LEVEL)
    assert (again.thresholds == detector.thresholds).all()
    assert again.calibration_seconds < 30  # about a second on an idle core


@pytest.mark.parametrize(
    "rows",
    [np.ones((199, 9), np.int64), np.zeros((200, 9), np.int64), np.full((200, 9), 11)],
)
def test_bad_windows_are_refused(detector: DriftDetector, rows: NDArray[np.int64]) -> None:
    with pytest.raises(ValueError, match="window"):
        detector.report(rows, np.zeros(len(rows), bool))
