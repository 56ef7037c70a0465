"""Drift of the inputs, without outcomes: the recent predictions against the training rows.

Ten statistics compare the last `window` predictions with the training rows, as two samples of
one population (the training rows are a sample too: 546 rows, about as many as a window, so
treating their shares as the truth would double the variance the test allows for and fire on
windows of new cases from the very population they came from):

- for each of the nine scores, Pearson's chi-square of the 2 x 10 table of its values' counts in
  the window and in the training rows (values neither holds left out);
- for `predicted_malignant_share`, the two-sample z-score of the share the model calls malignant
  at the served threshold, in the window against on the training rows:
  |p_w - p_t| / sqrt(p (1 - p) (1/window + 1/n)), p pooled. (The model's share on its training
  rows, not the labels' prevalence, so that it is what the share would be without drift.)

Why not the textbook tests: the scores take ten tied values, some held by a handful of training
rows, so a chi-square's or a KS test's asymptotic p-value is not its false-alarm rate here (the
KS test is far too conservative on tied data, the chi-square liberal with small expected
counts), and PSI > 0.1 fires on windows of a couple of hundred drawn from the training rows
themselves (tests/unit/monitoring/test_drift.py measures each). So the thresholds come from
simulation, a parametric bootstrap with the training rows' distribution as the population: each
of `simulations` draws takes a new reference of n rows and a window of `window` rows from it
(uniform draws over the training rows, so the nine scores keep their joint distribution) and
computes the ten statistics. The ten alarms are checked together, so the level is family-wise: a
common per-statistic level is found by bisection such that the share of simulated draws on which
ANY statistic exceeds its threshold is at most `false_alarm` (default 1%, less two Monte Carlo
standard errors); each threshold is its statistic's simulated quantile at that level. Seeded: the
thresholds are a function of the training rows, the window, the level and the threshold.

Cost: the simulation runs once at startup; `calibration_seconds` says how long it took (2-4 s for
20,000 draws at a window of 500 on a shared two-core machine under a load of about 10; fewer
`simulations` cost less and widen the margin below the level). `add` is a deque append (hot path);
`check` is a few NumPy calls over the window, off the hot path.
"""

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.artifact import Artifact
from model.features import FEATURE_NAMES, N_FEATURES, SCORE_MAX, SCORE_MIN

SHARE: Final = "predicted_malignant_share"
DRIFT_NAMES: Final = (*FEATURE_NAMES, SHARE)
DEFAULT_WINDOW: Final = 500
DEFAULT_FALSE_ALARM: Final = 0.01
DEFAULT_SIMULATIONS: Final = 20_000
SEED: Final = 20240601
N_VALUES: Final = SCORE_MAX - SCORE_MIN + 1
_BISECTION_STEPS: Final = 30
_SIMULATION_CELLS: Final = 2_000_000  # rows drawn at once


@dataclass(frozen=True)
class DriftReport:
    """One check of the window: per name in DRIFT_NAMES its statistic, threshold and alarm."""

    window: int
    statistics: dict[str, float]
    thresholds: dict[str, float]
    alarms: dict[str, bool]
    predicted_malignant_share: float
    expected_malignant_share: float  # the model's share on its training rows

    @property
    def any_alarm(self) -> bool:
        return any(self.alarms.values())


class Reference:
    """The training rows: distinct rows, their counts, whether the model calls each malignant;
    per score the count of each value, and the number called malignant."""

    def __init__(
        self, rows: NDArray[np.integer], counts: NDArray[np.integer], malignant: NDArray[np.bool_]
    ) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.malignant = np.asarray(malignant, dtype=np.bool_)
        if self.rows.ndim != 2 or self.rows.shape[1] != N_FEATURES:
            raise ValueError("reference rows must be (n, 9)")
        if not len(self.rows) == len(self.counts) == len(self.malignant):
            raise ValueError("one count and one call per reference row")
        self.n = int(self.counts.sum())
        # (distinct rows, 9 x 10): each row's value of each score, one-hot
        onehot = np.zeros((len(self.rows), N_FEATURES, N_VALUES))
        for j in range(N_FEATURES):
            onehot[np.arange(len(self.rows)), j, self.rows[:, j] - SCORE_MIN] = 1.0
        self.onehot = onehot.reshape(len(self.rows), -1)
        self.value_counts = (self.counts @ self.onehot).reshape(N_FEATURES, N_VALUES)
        self.called = float(self.counts @ self.malignant)
        self.p0 = self.called / self.n

    def tally(self, draws: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per sample, given as counts of each distinct row (k, rows): its value counts (k, 9,
        10) and its number called malignant (k,). In float32, twice as fast, and exact: every
        sum is a count below 2^24."""
        values = draws @ self.onehot.astype(np.float32)
        called = draws @ self.malignant.astype(np.float32)
        shaped = values.astype(np.float64).reshape(len(draws), N_FEATURES, N_VALUES)
        return shaped, called.astype(np.float64)


def statistics(
    window: tuple[NDArray[np.float64], NDArray[np.float64]],
    reference: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """(k, 10) statistics of k pairs of samples, each given as (value counts (k, 9, 10), number
    called malignant (k,)), the window's sizes all equal, and the reference's."""
    (w_values, w_called), (r_values, r_called) = window, reference
    w, n = w_values[0, 0].sum(), r_values[0, 0].sum()
    total = w_values + r_values
    held = total > 0
    # the 2 x 10 table's chi-square: sum over values of (O_w n - O_r w)^2 / (w n T)
    terms = (w_values * n - r_values * w) ** 2 / np.where(held, w * n * total, 1.0)
    chi2 = np.where(held, terms, 0.0).sum(axis=2)
    pooled = (w_called + r_called) / (w + n)
    spread = np.sqrt(pooled * (1.0 - pooled) * (1.0 / w + 1.0 / n))
    gap = np.abs(w_called / w - r_called / n)
    z = np.divide(gap, spread, out=np.zeros_like(gap), where=spread > 0)
    return np.column_stack([chi2, z])


def _draw(reference: Reference, rng: np.random.Generator, k: int, size: int) -> NDArray[np.float32]:
    """k samples of `size` training rows, drawn with replacement, as counts per distinct row."""
    distinct = len(reference.rows)
    training = np.repeat(np.arange(distinct), reference.counts)
    # 16-bit draws when the rows allow: NumPy makes them several times faster than 64-bit ones
    small = np.uint16 if len(training) <= np.iinfo(np.uint16).max else np.int64
    picked = training[rng.integers(0, len(training), size=(k, size), dtype=small)]
    picked += distinct * np.arange(k)[:, np.newaxis]
    counts = np.bincount(picked.ravel(), minlength=k * distinct).reshape(k, distinct)
    return counts.astype(np.float32)


def simulate(reference: Reference, window: int, n: int, seed: int) -> NDArray[np.float64]:
    """(n, 10) statistics of n draws, each a new reference sample of the training rows' size
    and a window, both from the training rows' distribution."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _SIMULATION_CELLS // (window + reference.n))
    out = []
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        windows = reference.tally(_draw(reference, rng, k, window))
        references = reference.tally(_draw(reference, rng, k, reference.n))
        out.append(statistics(windows, references))
    return np.concatenate(out)


def calibrate(simulated: NDArray[np.float64], false_alarm: float) -> NDArray[np.float64]:
    """Per statistic, the threshold (alarm when above it) at the common per-statistic level
    under which the share of simulated windows with any alarm is at most `false_alarm` (less
    two Monte Carlo standard errors)."""
    ordered = np.sort(simulated, axis=0)
    n = len(simulated)

    def thresholds(level: float) -> NDArray[np.float64]:
        # the smallest simulated value exceeded by at most `level` of the windows
        k = min(n - 1, math.ceil((1.0 - level) * n) - 1)
        return np.asarray(ordered[max(k, 0)])

    def family_rate(level: float) -> float:
        return float(np.mean((simulated > thresholds(level)).any(axis=1)))

    # The family rate measured on these windows is itself an estimate: aim two of its standard
    # errors below the level, so that on fresh windows it is at most the level.
    target = false_alarm - 2.0 * math.sqrt(false_alarm * (1.0 - false_alarm) / n)
    low, high = 0.0, false_alarm
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        if family_rate(middle) <= target:
            low = middle
        else:
            high = middle
    return thresholds(low)


class DriftDetector:
    """The window of recent predictions and the calibrated thresholds."""

    def __init__(
        self,
        reference: Reference,
        window: int = DEFAULT_WINDOW,
        false_alarm: float = DEFAULT_FALSE_ALARM,
        simulations: int = DEFAULT_SIMULATIONS,
        threshold: float = 0.5,
        seed: int = SEED,
    ) -> None:
        if window < 2 or not 0.0 < false_alarm < 1.0 or simulations < 100:
            raise ValueError("window >= 2, false_alarm in (0, 1), simulations >= 100")
        self.reference = reference
        self.window = window
        self.false_alarm = false_alarm
        self.threshold = threshold  # a probability above it is called malignant
        started = time.perf_counter()
        self.thresholds = calibrate(simulate(reference, window, simulations, seed), false_alarm)
        self.calibration_seconds = time.perf_counter() - started
        self._recent: deque[tuple[Sequence[int], bool]] = deque(maxlen=window)

    @classmethod
    def from_artifact(
        cls,
        artifact: Artifact,
        window: int = DEFAULT_WINDOW,
        false_alarm: float = DEFAULT_FALSE_ALARM,
        simulations: int = DEFAULT_SIMULATIONS,
        threshold: float | None = None,
    ) -> "DriftDetector":
        """Against the artifact's training rows, calls at `threshold` (default: the artifact's)."""
        t = artifact.default_threshold if threshold is None else threshold
        malignant = artifact.predict_proba(artifact.background_rows) > t
        reference = Reference(artifact.background_rows, artifact.background_counts, malignant)
        return cls(reference, window, false_alarm, simulations, t)

    def add(self, scores: Sequence[int], probability: float) -> None:
        """One answered row (hot path: an append; the oldest row falls out of the window)."""
        self._recent.append((scores, probability > self.threshold))

    def add_rows(self, rows: NDArray[np.integer], probabilities: NDArray[np.float64]) -> None:
        """A batch's rows (the last `window` of them are kept)."""
        keep = slice(max(len(rows) - self.window, 0), None)
        calls = (np.asarray(probabilities)[keep] > self.threshold).tolist()
        self._recent.extend(zip(np.asarray(rows)[keep].tolist(), calls, strict=True))

    def __len__(self) -> int:
        return len(self._recent)

    def clear(self) -> None:
        """Empty the window (the thresholds stay): for a new model, or disjoint windows."""
        self._recent.clear()

    def check(self) -> DriftReport | None:
        """The report on the current window, or None until it holds `window` rows."""
        recent = list(self._recent)
        if len(recent) < self.window:
            return None
        rows = np.array([r for r, _ in recent], dtype=np.int64)
        calls = np.array([c for _, c in recent], dtype=np.bool_)
        return self.report(rows, calls)

    def report(self, rows: NDArray[np.integer], calls: NDArray[np.bool_]) -> DriftReport:
        """The report on a window of `window` rows (n, 9) and their malignant calls."""
        x = np.asarray(rows, dtype=np.intp) - SCORE_MIN
        if x.shape != (self.window, N_FEATURES) or x.min() < 0 or x.max() >= N_VALUES:
            raise ValueError(f"a window is ({self.window}, 9) scores 1..10")
        counts = np.stack([np.bincount(x[:, j], minlength=N_VALUES) for j in range(N_FEATURES)])
        ref = self.reference
        stats = statistics(
            (counts[np.newaxis].astype(np.float64), np.array([float(np.sum(calls))])),
            (ref.value_counts[np.newaxis], np.array([ref.called])),
        )[0]
        return DriftReport(
            window=self.window,
            statistics=dict(zip(DRIFT_NAMES, stats.tolist(), strict=True)),
            thresholds=dict(zip(DRIFT_NAMES, self.thresholds.tolist(), strict=True)),
            alarms=dict(zip(DRIFT_NAMES, (stats > self.thresholds).tolist(), strict=True)),
            predicted_malignant_share=float(np.mean(calls)),
            expected_malignant_share=self.reference.p0,
        )
