"""Split-conformal prediction sets for the two classes, marginal or class-conditional (Mondrian).

For a row x with P(malignant) = p, the score of class c is one minus the probability the model
gives c (the "LAC" score): s_benign(x) = 1 - (1 - p), s_malignant(x) = 1 - p. Calibration rows
that played no part in training give, for each true class c, the scores s_c of its rows. At
confidence 1 - alpha, with n_c calibration rows of class c:

    k_c = ceil((n_c + 1)(1 - alpha))
    q_c = the k_c-th smallest of those scores  (+inf when k_c > n_c)
    set(x) = { c : s_c(x) <= q_c }

Class-conditional (Mondrian) calibration uses each class's own rows, so the guarantee holds per
class: P(true class in set | true class = c) >= 1 - alpha for benign and malignant alike, when
calibration and test rows are exchangeable. Marginal calibration pools every row's score for its
true class into one list and one q, so only the average over classes is guaranteed.

The set holds one class (a confident answer), both (the model cannot tell at this confidence:
refer), or none (neither class fits: refer). When a class has too few calibration rows for the
confidence asked, k_c > n_c, q_c is +inf and that class is in every set: the honest answer, not
invented precision. The highest confidence with a finite q_c is n_c / (n_c + 1).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

N_CLASSES: Final = 2
REPORT_CONFIDENCES: Final = (0.9, 0.95, 0.99)
DEFAULT_CONFIDENCE: Final = 0.95  # the service's default (DEFAULT_CONFIDENCE setting)
# (n + 1)(1 - alpha) is meant as an exact product: 100 x 0.95 must give rank 95, not the 96 that
# ceil(95.00000000000001) gives. Rounding to 9 decimals first absorbs the float error.
_RANK_DECIMALS: Final = 9


def class_scores(proba: ArrayLike) -> NDArray[np.float64]:
    """(n, 2) scores [s_benign, s_malignant] = 1 - [1 - p, p] for P(malignant) = p."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"proba must be 1-D, got shape {p.shape}")
    return 1.0 - np.column_stack([1.0 - p, p])


def conformal_rank(n: int, confidence: float) -> int:
    """k = ceil((n + 1) * confidence): the rank of the calibration score that bounds the set."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    return math.ceil(round((n + 1) * confidence, _RANK_DECIMALS))


def conformal_quantile(scores: ArrayLike, confidence: float) -> float:
    """The k-th smallest of `scores` for k = ceil((n + 1) * confidence); +inf when k > n."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.ndim != 1:
        raise ValueError("scores must be 1-D")
    return sorted_quantile(s, confidence)


def sorted_quantile(
    sorted_scores: Sequence[float] | NDArray[np.float64], confidence: float
) -> float:
    """`conformal_quantile` of scores already sorted ascending, without sorting them again: the
    service's per-request lookup."""
    k = conformal_rank(len(sorted_scores), confidence)
    return float(sorted_scores[k - 1]) if k <= len(sorted_scores) else math.inf


def set_membership(p: float, q_benign: float, q_malignant: float) -> tuple[bool, bool]:
    """(benign in set, malignant in set) for one row with P(malignant) = p: `predict_set` for a
    single probability, in the same floating-point operations as `class_scores`."""
    return 1.0 - (1.0 - p) <= q_benign, 1.0 - p <= q_malignant


class ConformalClassifier:
    """Prediction sets from calibration probabilities; `mondrian` calibrates each class apart.

    Fitted state: `scores_`, per class, the sorted calibration scores of that class's rows
    (Mondrian) or the one pooled sorted list (marginal, the same array for both classes).
    """

    def __init__(self, mondrian: bool = True) -> None:
        self.mondrian = mondrian

    def fit(self, proba: ArrayLike, y: ArrayLike) -> Self:
        labels = np.asarray(y)
        scores = class_scores(proba)
        if labels.shape != (len(scores),) or not np.isin(labels, (0, 1)).all():
            raise ValueError("y must be a 1-D array of 0 and 1, one per probability")
        labels = labels.astype(np.int64)
        own = scores[np.arange(len(labels)), labels]  # each row's score for its true class
        if self.mondrian:
            self.scores_ = tuple(np.sort(own[labels == c]) for c in range(N_CLASSES))
        else:
            pooled = np.sort(own)
            self.scores_ = (pooled, pooled)
        return self

    @classmethod
    def from_sorted_scores(cls, benign: ArrayLike, malignant: ArrayLike) -> Self:
        """A Mondrian classifier from stored per-class scores (the artifact's), which must be
        1-D, finite, within [0, 1] and sorted ascending."""
        scores = tuple(np.asarray(s, dtype=np.float64) for s in (benign, malignant))
        for name, s in zip(("benign", "malignant"), scores, strict=True):
            if s.ndim != 1 or len(s) == 0:
                raise ValueError(f"{name} scores must be a non-empty 1-D array")
            if not (np.isfinite(s).all() and s[0] >= 0.0 and s[-1] <= 1.0):
                raise ValueError(f"{name} scores must be finite and within [0, 1]")
            if np.any(np.diff(s) < 0):
                raise ValueError(f"{name} scores must be sorted ascending")
        model = cls(mondrian=True)
        model.scores_ = scores
        return model

    def quantiles(self, confidence: float) -> NDArray[np.float64]:
        """[q_benign, q_malignant] at this confidence (+inf where rows are too few)."""
        return np.array([sorted_quantile(s, confidence) for s in self.scores_])

    def max_confidence(self) -> NDArray[np.float64]:
        """Per class, the highest confidence with a finite quantile: n_c / (n_c + 1)."""
        return np.array([len(s) / (len(s) + 1) for s in self.scores_])

    def predict_set(self, proba: ArrayLike, confidence: float) -> NDArray[np.bool_]:
        """(n, 2) membership: column 0 benign, column 1 malignant."""
        return class_scores(proba) <= self.quantiles(confidence)


@dataclass(frozen=True)
class SetSummary:
    """How prediction sets at one confidence did on labelled rows: per true class (benign,
    malignant) the share whose set held it, and the shares of one-class, two-class and empty
    sets over all rows."""

    confidence: float
    coverage: tuple[float, float]
    n: tuple[int, int]
    singleton: float
    both: float
    empty: float


def summarize_sets(sets: ArrayLike, y: ArrayLike, confidence: float) -> SetSummary:
    members = np.asarray(sets, dtype=np.bool_)
    labels = np.asarray(y)
    if members.shape != (len(labels), N_CLASSES) or len(labels) == 0:
        raise ValueError("sets must be (n, 2) membership for n > 0 labelled rows")
    rows = [labels == c for c in range(N_CLASSES)]
    covered = tuple(
        float(members[r, c].mean()) if r.any() else math.nan for c, r in enumerate(rows)
    )
    size = members.sum(axis=1)
    return SetSummary(
        confidence=confidence,
        coverage=(covered[0], covered[1]),
        n=(int(rows[0].sum()), int(rows[1].sum())),
        singleton=float(np.mean(size == 1)),
        both=float(np.mean(size == 2)),
        empty=float(np.mean(size == 0)),
    )
