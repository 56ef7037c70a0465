"""The short simulation (scripts/monitoring_simulation.py): no shift stays quiet within each
alarm's stated level; an injected miscalibration and a covariate shift are each detected, every
run, in a bounded number of cases. The long version's table is in docs/monitoring.md."""

import time

import pytest
from scipy import stats

from app.monitoring.alarms import FIGURE_ALARMS
from scripts import monitoring_simulation as sim


@pytest.fixture(scope="module")
def world() -> sim.World:
    return sim.World.build()


def test_no_shift_false_alarms_within_their_levels(world: sim.World) -> None:
    started = time.perf_counter()
    tally = sim.no_shift(world, runs=4, windows=5, seed=101)
    for alert in [*{a.alert for a in FIGURE_ALARMS}, sim.DRIFT_ALARM]:
        level = world.drift.false_alarm if alert == sim.DRIFT_ALARM else sim.FIGURE_LEVEL
        checks = tally.checks[alert]
        assert checks == 20
        # independent checks (disjoint windows): at most what the level allows, 99.9% of runs
        assert tally.fired[alert] <= stats.binom.ppf(0.999, checks, level), alert
    assert time.perf_counter() - started < 60


def test_miscalibration_is_detected(world: sim.World) -> None:
    found = sim.miscalibration(world, runs=3, seed=102)
    delays = [delay for delay, _ in found]
    assert None not in delays
    assert all(0 < d <= sim.MAX_CASES for d in delays if d is not None)


def test_covariate_shift_is_detected_and_named(world: sim.World) -> None:
    found = sim.covariate_shift(world, runs=3, seed=103)
    assert all(delay is not None for delay, _ in found)
    # the shifted score, or the malignant share it moves, raises the alarm
    assert all(
        {"bare_nuclei", "predicted_malignant_share"} & set(names.split(",")) for _, names in found
    )


@pytest.mark.slow
def test_the_quick_report_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| drift (any of 10) | 20 |" in out
    assert "| miscalibration:" in out
