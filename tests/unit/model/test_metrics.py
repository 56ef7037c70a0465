"""Our confusion matrix, ratios and ROC AUC against scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as skm

from model.metrics import classify, confusion_matrix, evaluate, roc_auc, roc_curve

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 2, 300)
P = np.clip(Y * 0.35 + RNG.random(300) * 0.65, 0, 1)
P_TIED = np.round(P, 1)  # many ties


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.7, 0.9, 1.0])
def test_confusion_and_ratios_match_sklearn(threshold: float) -> None:
    pred = (threshold < P).astype(int)
    m = evaluate(Y, P, threshold)
    tn, fp, fn, tp = skm.confusion_matrix(Y, pred, labels=[0, 1]).ravel()
    assert (m.confusion.tn, m.confusion.fp, m.confusion.fn, m.confusion.tp) == (tn, fp, fn, tp)
    assert m.confusion.as_list() == skm.confusion_matrix(Y, pred, labels=[0, 1]).tolist()
    assert m.accuracy == pytest.approx(skm.accuracy_score(Y, pred))
    assert m.n == 300
    if tp + fp:
        assert m.precision == pytest.approx(skm.precision_score(Y, pred))
        assert m.f1 == pytest.approx(skm.f1_score(Y, pred))
    assert m.sensitivity == pytest.approx(skm.recall_score(Y, pred))
    assert m.specificity == pytest.approx(skm.recall_score(Y, pred, pos_label=0))


@pytest.mark.parametrize("scores", [P, P_TIED], ids=["distinct", "tied"])
def test_roc_auc_matches_sklearn(scores: np.ndarray) -> None:
    assert roc_auc(Y, scores) == pytest.approx(skm.roc_auc_score(Y, scores), abs=1e-12)


def test_roc_curve_matches_sklearn() -> None:
    fpr, tpr = roc_curve(Y, P_TIED)
    sk_fpr, sk_tpr, _ = skm.roc_curve(Y, P_TIED, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_threshold_is_strict_as_in_the_article() -> None:
    np.testing.assert_array_equal(classify([0.5, 0.5000001, 0.4], 0.5), [0, 1, 0])


def test_undefined_ratios_are_none_not_nan() -> None:
    y = np.array([0, 1, 1])
    at_one = evaluate(y, np.array([0.1, 0.9, 1.0]), 1.0)  # nothing is called malignant
    assert at_one.precision is None
    assert at_one.f1 == 0.0
    assert at_one.sensitivity == 0.0
    one_class = evaluate(np.array([0, 0]), np.array([0.2, 0.3]), 0.5)
    assert one_class.sensitivity is None
    assert one_class.roc_auc is None
    assert confusion_matrix([0, 0], [0, 0]).as_list() == [[2, 0], [0, 0]]
