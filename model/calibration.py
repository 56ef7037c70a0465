"""How well predicted probabilities match observed frequencies: Brier score, log loss, ECE.

For labels y in {0, 1} and predicted P(y = 1) = p over n rows:

    Brier    = mean((p - y)^2)
    log loss = -mean(y log p + (1 - y) log(1 - p)),  p clipped to [eps, 1 - eps]
    ECE      = sum over bins b of (n_b / n) |mean(p in b) - mean(y in b)|

ECE uses `bins` equal-width bins over [0, 1]: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] for 10 (the last
one closed). A perfectly calibrated model has ECE 0: among the rows it gives 0.8, 80% are
positive. `reliability` gives the per-bin figures behind ECE, for a reliability diagram.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

ECE_BINS: Final = 10
# The clip of log loss: the smallest step away from 0 and 1 that a float64 can represent near 1.
LOG_LOSS_EPS: Final = float(np.finfo(np.float64).eps)


def _check(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y_arr = np.asarray(y, dtype=np.float64)
    p_arr = np.asarray(p, dtype=np.float64)
    if y_arr.ndim != 1 or y_arr.shape != p_arr.shape or len(y_arr) == 0:
        raise ValueError(
            f"y and p must be non-empty 1-D arrays of one length: {y_arr.shape}, {p_arr.shape}"
        )
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if not (np.isfinite(p_arr).all() and ((p_arr >= 0) & (p_arr <= 1)).all()):
        raise ValueError("p must hold probabilities in [0, 1]")
    return y_arr, p_arr


def brier_score(y: ArrayLike, p: ArrayLike) -> float:
    y_arr, p_arr = _check(y, p)
    return float(np.mean((p_arr - y_arr) ** 2))


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    y_arr, p_arr = _check(y, p)
    q = np.clip(p_arr, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(y_arr * np.log(q) + (1.0 - y_arr) * np.log1p(-q)))


@dataclass(frozen=True)
class ReliabilityBins:
    """Per bin: its edges, how many rows fall in it, their mean p and their share of positives
    (mean_p and positive_rate are NaN in an empty bin)."""

    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    count: NDArray[np.int64]
    mean_p: NDArray[np.float64]
    positive_rate: NDArray[np.float64]


def reliability(y: ArrayLike, p: ArrayLike, bins: int = ECE_BINS) -> ReliabilityBins:
    y_arr, p_arr = _check(y, p)
    if bins < 1:
        raise ValueError("bins must be at least 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds edges[b] <= p < edges[b + 1]; p = 1 falls in the last bin.
    which = np.minimum((p_arr * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p_arr, minlength=bins) / count
        positive_rate = np.bincount(which, weights=y_arr, minlength=bins) / count
    return ReliabilityBins(edges[:-1], edges[1:], count, mean_p, positive_rate)


def expected_calibration_error(y: ArrayLike, p: ArrayLike, bins: int = ECE_BINS) -> float:
    r = reliability(y, p, bins)
    filled = r.count > 0
    gaps = np.abs(r.mean_p[filled] - r.positive_rate[filled])
    return float(np.sum(r.count[filled] * gaps) / np.sum(r.count))


@dataclass(frozen=True)
class CalibrationMetrics:
    """The three figures reported wherever accuracy is: lower is better for each."""

    brier_score: float
    log_loss: float
    ece: float


def calibration_metrics(y: ArrayLike, p: ArrayLike, bins: int = ECE_BINS) -> CalibrationMetrics:
    return CalibrationMetrics(
        brier_score(y, p), log_loss(y, p), expected_calibration_error(y, p, bins)
    )
