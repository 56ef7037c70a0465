"""The monitoring figures over confirmed cases, each with a 95% interval.

A confirmed case is an answered row whose outcome is known: its P(malignant), the outcome (1
malignant), the code of its prediction set (0 none, 1 benign, 2 malignant, 3 both), the threshold
it was answered at, and whether its input was atypical. A case is called malignant when its
probability is strictly greater than its threshold, as the service calls it.

The intervals, all two-sided at 95% (z = the standard normal's 0.975 quantile):

- proportions (sensitivity, specificity, PPV, NPV, the coverage of each class's prediction sets,
  the refer rate): Wilson's score interval;
- ROC AUC: DeLong's variance (the Sun and Xu midrank algorithm), the Wald interval taken on the
  logit scale so that it stays inside (0, 1); none when the AUC is 0 or 1 (its variance is then
  0) or a class has fewer than two cases;
- Brier score: the normal interval of a mean, from the squared errors' standard deviation;
- ECE: the percentile bootstrap (BOOTSTRAP_REPLICATES resamples of the cases, a fixed seed, so a
  snapshot is reproducible), drawn per cell of bin and outcome (`ece`): its cost does not grow
  with the cases beyond one pass over them. ECE is biased upward in small samples, and its bootstrap
  distribution too: read the interval as the spread of the estimate, not a guarantee of
  coverage. ECE itself is `model.calibration`'s: ten equal-width bins over [0, 1], the figure the
  artifact was validated with;
- calibration intercept and slope: logistic recalibration, y ~ a + b logit(p), fitted by Newton's
  method; the intercept is calibration-in-the-large (b held at 1, logit(p) an offset), the slope
  the two-parameter fit's b; Wald intervals from the observed information. A perfectly calibrated
  model has intercept 0 and slope 1. The slope is undefined (None) when the outcomes are
  separated by the probabilities (its maximum likelihood is at infinity); both are undefined
  with one class only.

A figure that is undefined (a ratio with no cases in its denominator, an interval of a single
class) is None, never NaN, so that it is JSON's null.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.monitoring.decision import SET_BENIGN, SET_MALIGNANT, decide
from model.artifact import Artifact
from model.calibration import ECE_BINS, LOG_LOSS_EPS, expected_calibration_error
from model.conformal import DEFAULT_CONFIDENCE

Z95: Final = 1.959963984540054  # the standard normal's 0.975 quantile
BOOTSTRAP_REPLICATES: Final = 2000
BOOTSTRAP_SEED: Final = 20240601
NEWTON_MAX_STEP: Final = 5.0  # on the logit scale: e^5 is a 150-fold change of odds
NEWTON_TOLERANCE: Final = 1e-12
NEWTON_MAX_STEPS: Final = 100
# logit(p) of p clipped to [eps, 1 - eps], the log-loss clip: the network's sigmoid rounds to
# exactly 1.0 above a logit of about 37.
LOGIT_LIMIT: Final = math.log((1.0 - LOG_LOSS_EPS) / LOG_LOSS_EPS)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure and its 95% interval; None where undefined."""

    value: float | None
    lower: float | None
    upper: float | None


UNDEFINED: Final = Estimate(None, None, None)

FIGURE_NAMES: Final = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "roc_auc",
    "brier",
    "ece",
    "calibration_intercept",
    "calibration_slope",
    "coverage_benign",
    "coverage_malignant",
    "refer_rate",
)


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures over one set of confirmed cases (FIGURE_NAMES are the Estimate fields)."""

    n: int
    n_benign: int
    n_malignant: int
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    roc_auc: Estimate
    brier: Estimate
    ece: Estimate
    calibration_intercept: Estimate
    calibration_slope: Estimate
    coverage_benign: Estimate
    coverage_malignant: Estimate
    refer_rate: Estimate

    def estimates(self) -> dict[str, Estimate]:
        return {name: getattr(self, name) for name in FIGURE_NAMES}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


assert tuple(f.name for f in fields(Figures))[3:] == FIGURE_NAMES


@dataclass(frozen=True, slots=True)
class Cases:
    """Confirmed cases as columns of one length, checked."""

    probability: NDArray[np.float64]
    outcome: NDArray[np.int8]
    set_code: NDArray[np.int8]
    threshold: NDArray[np.float64]
    atypical: NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        probability: ArrayLike,
        outcome: ArrayLike,
        set_code: ArrayLike,
        threshold: ArrayLike,
        atypical: ArrayLike = False,
    ) -> "Cases":
        p = np.asarray(probability, dtype=np.float64)
        n = p.shape[0] if p.ndim == 1 else -1
        y, s = np.asarray(outcome), np.asarray(set_code)
        t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), p.shape)
        a = np.broadcast_to(np.asarray(atypical, dtype=np.bool_), p.shape)
        if n < 0 or y.shape != (n,) or s.shape != (n,):
            raise ValueError("probability, outcome and set_code must be 1-D of one length")
        if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
            raise ValueError("probabilities must lie in [0, 1]")
        if not (np.isin(y, (0, 1)).all() and np.isin(s, (0, 1, 2, 3)).all()):
            raise ValueError("outcomes must be 0 or 1 and set codes 0..3")
        if not (np.isfinite(t).all() and ((t >= 0) & (t <= 1)).all()):
            raise ValueError("thresholds must lie in [0, 1]")
        return cls(p, y.astype(np.int8), s.astype(np.int8), t, a)

    def __len__(self) -> int:
        return len(self.probability)

    def tail(self, n: int) -> "Cases":
        """The last n cases (all of them when there are fewer)."""
        start = max(len(self) - n, 0)
        return Cases(
            self.probability[start:],
            self.outcome[start:],
            self.set_code[start:],
            self.threshold[start:],
            self.atypical[start:],
        )


# -- proportions ------------------------------------------------------------------------------
def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """The share successes / n and Wilson's score interval; undefined for n = 0."""
    if n == 0:
        return UNDEFINED
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denominator
    return Estimate(p, max(centre - half, 0.0), min(centre + half, 1.0))


# -- ROC AUC ----------------------------------------------------------------------------------
def midranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def delong_components(
    positive: NDArray[np.float64], negative: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """DeLong's structural components: for each positive, the share of negatives it outscores
    (ties one half); for each negative, the share of positives that outscore it."""
    m, n = len(positive), len(negative)
    combined = midranks(np.concatenate([positive, negative]))
    v10 = (combined[:m] - midranks(positive)) / n
    v01 = 1.0 - (combined[m:] - midranks(negative)) / m
    return v10, v01


def roc_auc(probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> Estimate:
    positive = probability[outcome == 1]
    negative = probability[outcome == 0]
    if len(positive) == 0 or len(negative) == 0:
        return UNDEFINED
    v10, v01 = delong_components(positive, negative)
    auc = float(v10.mean())
    if len(positive) < 2 or len(negative) < 2 or auc in (0.0, 1.0):
        return Estimate(auc, None, None)
    variance = v10.var(ddof=1) / len(positive) + v01.var(ddof=1) / len(negative)
    half = Z95 * math.sqrt(variance) / (auc * (1.0 - auc))
    centre = math.log(auc / (1.0 - auc))
    return Estimate(auc, _expit(centre - half), _expit(centre + half))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -- calibration ------------------------------------------------------------------------------
def brier(probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> Estimate:
    if len(probability) == 0:
        return UNDEFINED
    errors = (probability - outcome) ** 2
    value = float(errors.mean())
    if len(errors) < 2:
        return Estimate(value, None, None)
    half = Z95 * float(errors.std(ddof=1)) / math.sqrt(len(errors))
    return Estimate(value, max(value - half, 0.0), min(value + half, 1.0))


def _cells(
    probability: NDArray[np.float64], outcome: NDArray[np.int8]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per cell (ECE bin x outcome, bin-major: cell 2b + y), its count, and the mean and
    population variance of its probabilities (0 for an empty cell)."""
    which = np.minimum((probability * ECE_BINS).astype(np.intp), ECE_BINS - 1)
    cell = 2 * which + outcome
    size = 2 * ECE_BINS
    count = np.bincount(cell, minlength=size).astype(np.float64)
    total = np.bincount(cell, weights=probability, minlength=size)
    squares = np.bincount(cell, weights=probability * probability, minlength=size)
    filled = np.maximum(count, 1.0)
    mean = total / filled
    return count, mean, np.maximum(squares / filled - mean * mean, 0.0)


def ece(probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> Estimate:
    n = len(probability)
    if n == 0:
        return UNDEFINED
    value = expected_calibration_error(outcome, probability)
    if n < 2:
        return Estimate(value, None, None)
    # The bootstrap of the cases, drawn per cell: resampling n cases with replacement draws
    # the cells' counts from a multinomial, exactly; given its count k, a cell's sum of
    # probabilities is a sum of k draws from its own, drawn here from the normal with that
    # sum's mean and variance (a cell's probabilities lie within one bin, a tenth wide). Its
    # outcomes' sum is exact (k or 0), so is every bin's sum of y; the cost is one pass over
    # the cases, then BOOTSTRAP_REPLICATES x 20 draws, whatever n.
    count, mean, variance = _cells(probability, outcome)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    drawn = rng.multinomial(n, count / n, size=BOOTSTRAP_REPLICATES).astype(np.float64)
    noise = rng.standard_normal(drawn.shape)
    sum_p = (drawn * mean + np.sqrt(drawn * variance) * noise).reshape(-1, ECE_BINS, 2)
    sum_y = drawn.reshape(-1, ECE_BINS, 2)[:, :, 1]
    # sum over bins of n_b |mean p - mean y| / n = sum of |sum p - sum y| / n
    replicates = np.abs(sum_p.sum(axis=2) - sum_y).sum(axis=1) / n
    lower, upper = np.quantile(replicates, [0.025, 0.975])
    return Estimate(value, float(lower), float(upper))


def logit(probability: NDArray[np.float64]) -> NDArray[np.float64]:
    """log(p / (1 - p)) of p clipped to [eps, 1 - eps] (the log-loss clip of model.calibration)."""
    p = np.clip(probability, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True, slots=True)
class _Grouped:
    """Cases grouped by their logit: each distinct logit x, its cases n and malignant ones k.
    The likelihood is a sum over cases, so it is the same sum over groups, weighted: a fit costs
    the distinct probabilities, not the cases (the data set's 683 rows have fewer than 500)."""

    x: NDArray[np.float64]
    n: NDArray[np.float64]
    k: NDArray[np.float64]

    @classmethod
    def of(cls, probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> "_Grouped":
        x, which = np.unique(logit(probability), return_inverse=True)
        n = np.bincount(which, minlength=len(x)).astype(np.float64)
        k = np.bincount(which, weights=outcome.astype(np.float64), minlength=len(x))
        return cls(x, n, k.astype(np.float64))


def _log_likelihood(eta: NDArray[np.float64], groups: _Grouped) -> float:
    # k eta - n log(1 + e^eta), with logaddexp so that a large eta does not overflow
    return float(np.sum(groups.k * eta - groups.n * np.logaddexp(0.0, eta)))


def _newton(
    design: NDArray[np.float64], offset: NDArray[np.float64], groups: _Grouped
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Maximum likelihood of k ~ Binomial(n, expit(offset + design @ beta)), by Newton's method
    with step halving; the coefficients and the inverse of the observed information, or None if
    it does not converge."""
    beta = np.zeros(design.shape[1])
    loglik = _log_likelihood(offset, groups)
    for _ in range(NEWTON_MAX_STEPS):
        information, score = _information(design, offset + design @ beta, groups)
        try:
            step = np.linalg.solve(information, score)
        except np.linalg.LinAlgError:  # every case at a probability of 0 or 1 in floating point
            return None
        # A first step from far off can land where every probability rounds to 0 or 1 and
        # the information is singular: no step longer than NEWTON_MAX_STEP on the logit scale.
        step = step * min(1.0, NEWTON_MAX_STEP / max(float(np.max(np.abs(step))), 1e-300))
        for _ in range(60):  # halve the step until the likelihood does not fall
            trial = beta + step
            trial_loglik = _log_likelihood(offset + design @ trial, groups)
            if trial_loglik >= loglik - 1e-12 * abs(loglik):
                break
            step = step / 2.0
        beta, loglik = trial, trial_loglik
        if np.max(np.abs(step)) <= NEWTON_TOLERANCE * (1.0 + np.max(np.abs(beta))):
            information, _ = _information(design, offset + design @ beta, groups)
            try:
                return beta, np.asarray(np.linalg.inv(information), dtype=np.float64)
            except np.linalg.LinAlgError:
                return None
    return None


def _information(
    design: NDArray[np.float64], eta: NDArray[np.float64], groups: _Grouped
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The observed information and the score at eta."""
    mu = 1.0 / (1.0 + np.exp(-eta))
    weight = groups.n * mu * (1.0 - mu)
    information = (design * weight[:, np.newaxis]).T @ design
    return information, design.T @ (groups.k - groups.n * mu)


def _wald(value: float, variance: float) -> Estimate:
    half = Z95 * math.sqrt(variance)
    return Estimate(value, value - half, value + half)


def calibration_intercept(probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> Estimate:
    """Calibration-in-the-large: a in y ~ expit(a + logit(p))."""
    if len(outcome) == 0 or outcome.min() == outcome.max():
        return UNDEFINED
    groups = _Grouped.of(probability, outcome)
    fit = _newton(np.ones((len(groups.x), 1)), groups.x, groups)
    if fit is None:
        return UNDEFINED
    return _wald(float(fit[0][0]), float(fit[1][0, 0]))


def calibration_slope(probability: NDArray[np.float64], outcome: NDArray[np.int8]) -> Estimate:
    """b in y ~ expit(a + b logit(p)); undefined when the logits separate the outcomes."""
    if len(outcome) == 0 or outcome.min() == outcome.max():
        return UNDEFINED
    groups = _Grouped.of(probability, outcome)
    x0, x1 = groups.x[groups.k < groups.n], groups.x[groups.k > 0]  # benign, malignant logits
    if x0.max() <= x1.min() or x1.max() <= x0.min():  # (quasi-)complete separation
        return UNDEFINED
    design = np.column_stack([np.ones(len(groups.x)), groups.x])
    fit = _newton(design, np.zeros(len(groups.x)), groups)
    if fit is None:
        return UNDEFINED
    return _wald(float(fit[0][1]), float(fit[1][1, 1]))


# -- all of them ------------------------------------------------------------------------------
def compute_figures(cases: Cases) -> Figures:
    y, p, s = cases.outcome, cases.probability, cases.set_code
    called = p > cases.threshold
    malignant, benign = y == 1, y == 0
    tp = int(np.sum(called & malignant))
    fn = int(np.sum(~called & malignant))
    tn = int(np.sum(~called & benign))
    fp = int(np.sum(called & benign))
    refer = refer_mask(s, cases.atypical)
    return Figures(
        n=len(y),
        n_benign=tn + fp,
        n_malignant=tp + fn,
        sensitivity=wilson(tp, tp + fn),
        specificity=wilson(tn, tn + fp),
        ppv=wilson(tp, tp + fp),
        npv=wilson(tn, tn + fn),
        roc_auc=roc_auc(p, y),
        brier=brier(p, y),
        ece=ece(p, y),
        calibration_intercept=calibration_intercept(p, y),
        calibration_slope=calibration_slope(p, y),
        coverage_benign=wilson(int(np.sum(benign & ((s & SET_BENIGN) != 0))), tn + fp),
        coverage_malignant=wilson(int(np.sum(malignant & ((s & SET_MALIGNANT) != 0))), tp + fn),
        refer_rate=wilson(int(refer.sum()), len(y)),
    )


def refer_mask(set_code: NDArray[np.int8], atypical: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Which cases were referred: `decide` on each code, atypical flag."""
    table = np.array([[decide(c, a)[0] == "refer" for a in (False, True)] for c in range(4)])
    return np.asarray(table[set_code.astype(np.intp), atypical.astype(np.intp)], dtype=np.bool_)


def validated_figures(artifact: Artifact, confidence: float = DEFAULT_CONFIDENCE) -> Figures:
    """The same figures over the artifact's validation rows, at its default threshold and the
    prediction sets at `confidence`: what the live figures are compared with. The artifact keeps
    the validation rows' ids, not their scores, so none is atypical here: the validated refer
    rate is the share of sets that do not hold exactly one class."""
    members = artifact.conformal.classifier().predict_set(artifact.valid_proba, confidence)
    codes = members[:, 0].astype(np.int8) | (members[:, 1].astype(np.int8) << 1)
    return compute_figures(
        Cases.of(artifact.valid_proba, artifact.valid_y, codes, artifact.default_threshold)
    )
