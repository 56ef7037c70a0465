"""Simulate the service in use, in process, and measure its alarms.

    python -m scripts.monitoring_simulation            # the long version: a markdown table
    python -m scripts.monitoring_simulation --quick    # a few runs (the test's size)

Cases are drawn with replacement from the data set (all 683 complete rows, with their labels as
outcomes), scored by the served artifact, given their prediction set at the default confidence
and their typicality, and streamed one at a time into a `Monitor` (the confirmed cases) and a
`DriftDetector` (the inputs). The alarms are app/monitoring/alarms.py's (what the Prometheus
rules compute) and the drift detector's.

(a) No shift: the alarms are checked on disjoint windows (every `window` confirmed cases for the
    figures, every drift window for the drift), so the checks are independent and their
    false-alarm rate is a binomial share, set beside each alarm's stated level.
(b) Miscalibration: from case 300 on, one benign outcome in ten is reported malignant; the
    figure alarms are checked every CHECK_EVERY cases; the delay is the cases from 300 to the
    first alarm.
(c) Covariate shift: from the first full drift window on, a share of the cases have
    bare_nuclei raised by 2 (at most 10); the drift is checked every DRIFT_CHECK_EVERY rows; the
    delay is the rows from the shift's start to the first drift alarm.
"""

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from app.monitoring.alarms import FIGURE_ALARMS, firing
from app.monitoring.drift import DEFAULT_WINDOW as DRIFT_WINDOW
from app.monitoring.drift import DriftDetector
from app.monitoring.figures import wilson
from app.monitoring.state import DEFAULT_WINDOW, Case, Monitor
from app.monitoring.typicality import Typicality
from model.artifact import Artifact, load_artifact
from model.conformal import DEFAULT_CONFIDENCE
from model.data import load_dataset
from model.features import FEATURE_NAMES

FIGURE_LEVEL: Final = 0.025  # one-sided 95% interval bound: 2.5% at the limit, less inside
MISCALIBRATION_START: Final = 300
FLIP_SHARE: Final = 0.1
SHIFT_SHARES: Final = (0.5, 0.2)
SHIFT_SCORE: Final = "bare_nuclei"
CHECK_EVERY: Final = 10
DRIFT_CHECK_EVERY: Final = 10
MAX_CASES: Final = 3000
DRIFT_ALARM: Final = "drift (any of 10)"


@dataclass(frozen=True)
class World:
    """The data set scored once: what the service would answer for each row."""

    artifact: Artifact
    X: NDArray[np.int64]
    y: NDArray[np.int64]
    probability: NDArray[np.float64]
    set_code: NDArray[np.int64]
    atypical: NDArray[np.bool_]
    typicality: Typicality
    drift: DriftDetector

    @classmethod
    def build(cls, drift_window: int = DRIFT_WINDOW) -> "World":
        artifact, data = load_artifact(), load_dataset()
        typicality = Typicality.from_artifact(artifact)
        drift = DriftDetector.from_artifact(artifact, window=drift_window)
        return cls(
            artifact, data.X, data.y, *cls.answers(artifact, typicality, data.X), typicality, drift
        )

    @staticmethod
    def answers(
        artifact: Artifact, typicality: Typicality, X: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
        p = artifact.predict_proba(X)
        sets = artifact.conformal.classifier().predict_set(p, DEFAULT_CONFIDENCE)
        return p, sets[:, 0] + 2 * sets[:, 1], typicality.atypical_rows(X)

    def case(self, i: int, outcome: int) -> Case:
        return Case(
            probability=float(self.probability[i]),
            outcome=outcome,
            set_code=int(self.set_code[i]),
            threshold=self.artifact.default_threshold,
            atypical=bool(self.atypical[i]),
        )

    def fresh_drift(self) -> DriftDetector:
        """The detector, its window emptied (its thresholds kept)."""
        self.drift.clear()
        return self.drift


@dataclass
class Tally:
    fired: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)


def no_shift(world: World, runs: int, windows: int, seed: int) -> Tally:
    """(a): per run, `windows` disjoint recent windows of confirmed cases and as many disjoint
    drift windows of inputs, each checked once."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    for _ in range(runs):
        monitor = Monitor(window=DEFAULT_WINDOW)
        for i in rng.integers(0, len(world.y), DEFAULT_WINDOW * windows):
            monitor.add(world.case(int(i), int(world.y[i])))
            if len(monitor) % DEFAULT_WINDOW == 0:
                fired = {a.alert for a in firing(monitor.snapshot().overall.recent)}
                for alarm in FIGURE_ALARMS:
                    tally.checks[alarm.alert] += 1
                    tally.fired[alarm.alert] += alarm.alert in fired
        drift = world.fresh_drift()
        for i in rng.integers(0, len(world.y), drift.window * windows):
            drift.add(world.X[i].tolist(), float(world.probability[i]))
            if len(drift) == drift.window:
                report = drift.check()
                assert report is not None
                tally.checks[DRIFT_ALARM] += 1
                tally.fired[DRIFT_ALARM] += report.any_alarm
                drift.clear()  # the next window is disjoint from this one
    return tally


def miscalibration(world: World, runs: int, seed: int) -> list[tuple[int | None, str]]:
    """(b): per run, the cases from MISCALIBRATION_START to the first figure alarm (None if
    none by MAX_CASES) and which alarm it was."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int | None, str]] = []
    for _ in range(runs):
        monitor = Monitor(window=DEFAULT_WINDOW)
        found: tuple[int | None, str] = (None, "")
        for n, i in enumerate(rng.integers(0, len(world.y), MAX_CASES), start=1):
            outcome = int(world.y[i])
            if n > MISCALIBRATION_START and outcome == 0 and rng.random() < FLIP_SHARE:
                outcome = 1
            monitor.add(world.case(int(i), outcome))
            if n > MISCALIBRATION_START and n % CHECK_EVERY == 0:
                fired = firing(monitor.snapshot().overall.recent)
                if fired:
                    found = (n - MISCALIBRATION_START, ",".join(a.alert for a in fired))
                    break
        out.append(found)
    return out


def covariate_shift(
    world: World, runs: int, seed: int, share: float = SHIFT_SHARES[0]
) -> list[tuple[int | None, str]]:
    """(c): per run, the rows from the shift's start to the first drift alarm."""
    rng = np.random.default_rng(seed)
    column = FEATURE_NAMES.index(SHIFT_SCORE)
    shifted_X = world.X.copy()
    shifted_X[:, column] = np.minimum(shifted_X[:, column] + 2, 10)
    shifted_p = world.artifact.predict_proba(shifted_X)
    out: list[tuple[int | None, str]] = []
    for _ in range(runs):
        drift = world.fresh_drift()
        start = drift.window
        found: tuple[int | None, str] = (None, "")
        for n, i in enumerate(rng.integers(0, len(world.y), MAX_CASES + start), start=1):
            if n > start and rng.random() < share:
                drift.add(shifted_X[i].tolist(), float(shifted_p[i]))
            else:
                drift.add(world.X[i].tolist(), float(world.probability[i]))
            if n > start and n % DRIFT_CHECK_EVERY == 0:
                report = drift.check()
                if report is not None and report.any_alarm:
                    names = [k for k, v in report.alarms.items() if v]
                    found = (n - start, ",".join(names))
                    break
        out.append(found)
    return out


# -- the report --------------------------------------------------------------------------------
def upper_binomial(fired: int, checks: int) -> float:
    """Wilson's 95% upper bound of a share (how high the true rate may be)."""
    upper = wilson(fired, checks).upper
    return 1.0 if upper is None else upper


def false_alarm_rows(tally: Tally, drift_level: float) -> Iterator[str]:
    for alert in [*dict.fromkeys(a.alert for a in FIGURE_ALARMS), DRIFT_ALARM]:
        level = drift_level if alert == DRIFT_ALARM else FIGURE_LEVEL
        fired, checks = tally.fired[alert], tally.checks[alert]
        yield (
            f"| {alert} | {checks} | {fired} | {fired / checks:.4f} | "
            f"{upper_binomial(fired, checks):.4f} | {level:g} |"
        )


def delay_row(name: str, found: list[tuple[int | None, str]]) -> str:
    delays = np.array([d for d, _ in found if d is not None], dtype=np.float64)
    detected = len(delays)
    if detected == 0:
        return f"| {name} | 0/{len(found)} | - | - | - | - |"
    q = np.percentile(delays, [10, 50, 90])
    first = Counter(w.split(",")[0] for d, w in found if d is not None).most_common(1)[0][0]
    return f"| {name} | {detected}/{len(found)} | {q[0]:.0f} | {q[1]:.0f} | {q[2]:.0f} | {first} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few runs, as the test")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    runs, shifted = (4, 3) if args.quick else (1000, 100)
    started = time.perf_counter()
    world = World.build()
    print(
        f"drift thresholds calibrated in {world.drift.calibration_seconds:.2f} s "
        f"(window {world.drift.window}); typicality: {world.typicality.model}"
    )
    tally = no_shift(world, runs, 5, args.seed)
    print(
        "\n(a) No shift: false alarms per check, disjoint windows "
        f"({DEFAULT_WINDOW} confirmed cases; {world.drift.window} inputs)\n"
    )
    print("| alarm | checks | fired | rate | 95% upper | stated level |")
    print("|---|---|---|---|---|---|")
    for row in false_alarm_rows(tally, world.drift.false_alarm):
        print(row)
    print("\n(b), (c): cases until detection\n")
    print("| scenario | detected | p10 | median | p90 | first alarm (most often) |")
    print("|---|---|---|---|---|---|")
    print(
        delay_row(
            "miscalibration: 1 in 10 benign reported malignant from case 300",
            miscalibration(world, shifted, args.seed + 1),
        )
    )
    for k, share in enumerate(SHIFT_SHARES):
        print(
            delay_row(
                f"covariate: {SHIFT_SCORE} +2 (at most 10) in {share:.0%} of cases",
                covariate_shift(world, shifted, args.seed + 2 + k, share),
            )
        )
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
