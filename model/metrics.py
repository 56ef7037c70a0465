"""Classification metrics at a confidence threshold, and the threshold-free ROC AUC.

A row is called malignant when its probability is strictly greater than the threshold, as in the
article. Ratios whose denominator is zero (precision with no positive calls, say) are None: JSON
null, never NaN.
"""

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class ConfusionMatrix:
    tn: int
    fp: int
    fn: int
    tp: int

    def as_list(self) -> list[list[int]]:
        """Rows actual, columns predicted, benign first."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


@dataclass(frozen=True)
class ThresholdMetrics:
    threshold: float
    n: int
    accuracy: float
    sensitivity: float | None
    specificity: float | None
    precision: float | None
    f1: float | None
    roc_auc: float | None
    confusion: ConfusionMatrix

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def classify(proba: ArrayLike, threshold: float) -> NDArray[np.int64]:
    return (np.asarray(proba) > threshold).astype(np.int64)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> ConfusionMatrix:
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    return ConfusionMatrix(
        tn=int(np.sum(~t & ~p)),
        fp=int(np.sum(~t & p)),
        fn=int(np.sum(t & ~p)),
        tp=int(np.sum(t & p)),
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def roc_auc(y_true: ArrayLike, proba: ArrayLike) -> float | None:
    """Area under the ROC curve as the Mann-Whitney U statistic; tied scores count one half."""
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(proba, dtype=np.float64)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average rank over each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(
    y_true: ArrayLike, proba: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False and true positive rates as the threshold sweeps from above every score down."""
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(proba, dtype=np.float64)
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    calls = s[np.newaxis, :] >= thresholds[:, np.newaxis]
    tpr = (calls & t).sum(axis=1) / max(int(t.sum()), 1)
    fpr = (calls & ~t).sum(axis=1) / max(int((~t).sum()), 1)
    return fpr, tpr


def evaluate(y_true: ArrayLike, proba: ArrayLike, threshold: float) -> ThresholdMetrics:
    y = np.asarray(y_true)
    cm = confusion_matrix(y, classify(proba, threshold))
    precision = _ratio(cm.tp, cm.tp + cm.fp)
    sensitivity = _ratio(cm.tp, cm.tp + cm.fn)
    f1 = _ratio(2 * cm.tp, 2 * cm.tp + cm.fp + cm.fn)
    return ThresholdMetrics(
        threshold=float(threshold),
        n=len(y),
        accuracy=(cm.tp + cm.tn) / len(y),
        sensitivity=sensitivity,
        specificity=_ratio(cm.tn, cm.tn + cm.fp),
        precision=precision,
        f1=f1,
        roc_auc=roc_auc(y, proba),
        confusion=cm,
    )
