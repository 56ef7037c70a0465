"""The short live simulation (scripts/monitoring_live.py) against the real service: no shift
stays within each alarm's stated level; an injected miscalibration and a covariate shift are each
detected, every run, within a bounded number of cases. The long version's tables are in
docs/monitoring.md (make evaluate)."""

import time

import pytest
from scipy import stats

from app.monitoring.alarms import FIGURE_ALARMS
from model.data import Dataset
from scripts import monitoring_live as live
from scripts.monitoring_simulation import DRIFT_ALARM, SHIFT_SCORE


@pytest.mark.slow
def test_no_shift_false_alarms_within_their_levels(dataset: Dataset) -> None:
    started = time.perf_counter()
    tally = live.no_shift(dataset, windows=10, seed=201)
    for alert in {*tally.checks}:
        # disjoint windows, so independent checks: at most what the level allows, 99.9% of runs
        allowed = stats.binom.ppf(0.999, tally.checks[alert], live.level(alert))
        assert tally.fired[alert] <= allowed, (alert, tally)
    assert {a.alert for a in FIGURE_ALARMS} | {DRIFT_ALARM} == set(tally.checks)
    assert tally.checks[DRIFT_ALARM] == 10 * live.WINDOW // live.DRIFT_WINDOW
    assert time.perf_counter() - started < 180


@pytest.mark.slow
def test_miscalibration_is_detected_through_the_service(dataset: Dataset) -> None:
    found = live.miscalibration(dataset, runs=2, seed=202)
    for delay, alarms in found:
        assert delay is not None, found
        assert 0 < delay <= 400, found  # the in-process simulation's p90 is 142
        assert alarms


@pytest.mark.slow
def test_covariate_shift_is_detected_and_named_through_the_service(dataset: Dataset) -> None:
    found = live.covariate_shift(dataset, runs=2, seed=203, share=0.5)
    for delay, alarms in found:
        assert delay is not None, found
        assert 0 < delay <= 400, found  # the in-process simulation's p90 is 160
        # the shifted score, or the malignant share it moves, raises the alarm
        assert {SHIFT_SCORE, "predicted_malignant_share"} & set(alarms.split(","))
