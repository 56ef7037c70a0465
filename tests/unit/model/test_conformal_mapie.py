"""Our prediction sets against MAPIE's split-conformal classifier on the same probabilities.

MAPIE's `SplitConformalClassifier(conformity_score="lac", prefit=True)` is marginal; run once per
class on that class's calibration rows only, it is the class-conditional (Mondrian) version, and
its column for that class is that class's membership. The prefit estimator wraps the artifact's
network: its one input column is P(malignant), so MAPIE sees exactly our probabilities.
"""

from typing import Any

import numpy as np
import pytest
from mapie.classification import SplitConformalClassifier
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from model.artifact import Artifact
from model.conformal import ConformalClassifier
from model.data import Dataset
from model.splits import stratified_split

CONFIDENCES = [0.5, 0.8, 0.9, 0.95, 0.975, 0.99]
ONE_LABEL = "ignore:WARNING. your conformalization dataset has less labels:UserWarning"


class GivenProbability(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier whose one input column is already P(malignant)."""

    def fit(self, X: Any, y: Any) -> "GivenProbability":
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 1
        return self

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        p = np.asarray(X, dtype=np.float64)[:, 0]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> NDArray[np.int64]:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


def mapie_sets(
    cal_p: NDArray[np.float64], cal_y: NDArray[np.int64], test_p: NDArray[np.float64], conf: float
) -> NDArray[np.bool_]:
    mapie = SplitConformalClassifier(
        GivenProbability().fit(None, None),
        confidence_level=conf,
        conformity_score="lac",
        prefit=True,
    )
    mapie.conformalize(cal_p[:, None], cal_y)
    _, sets = mapie.predict_set(test_p[:, None])
    return np.asarray(sets[:, :, 0], dtype=np.bool_)


@pytest.fixture(scope="module")
def one_split(
    artifact: Artifact, dataset: Dataset
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Calibration half and test half of the data set, stratified, scored by the served network."""
    cal_idx, test_idx = stratified_split(dataset.y, seed=0, valid_fraction=0.5)
    proba = artifact.predict_proba(dataset.X)
    return proba[cal_idx], dataset.y[cal_idx], proba[test_idx]


@pytest.mark.filterwarnings(ONE_LABEL)
@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_mondrian_sets_equal_mapie_run_per_class(
    one_split: tuple[NDArray[Any], NDArray[Any], NDArray[Any]], confidence: float
) -> None:
    cal_p, cal_y, test_p = one_split
    ours = ConformalClassifier(mondrian=True).fit(cal_p, cal_y).predict_set(test_p, confidence)
    theirs = np.column_stack(
        [mapie_sets(cal_p[cal_y == c], cal_y[cal_y == c], test_p, confidence)[:, c] for c in (0, 1)]
    )
    np.testing.assert_array_equal(ours, theirs)
    assert ours[:, 1].sum() > 0, "a comparison where malignant is never in a set proves little"


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_marginal_sets_equal_mapie(
    one_split: tuple[NDArray[Any], NDArray[Any], NDArray[Any]], confidence: float
) -> None:
    cal_p, cal_y, test_p = one_split
    ours = ConformalClassifier(mondrian=False).fit(cal_p, cal_y).predict_set(test_p, confidence)
    np.testing.assert_array_equal(ours, mapie_sets(cal_p, cal_y, test_p, confidence))


@pytest.mark.filterwarnings(ONE_LABEL)
def test_where_mapie_refuses_a_confidence_the_class_is_in_every_set(
    one_split: tuple[NDArray[Any], NDArray[Any], NDArray[Any]],
) -> None:
    """119 malignant calibration rows support at most 119 / 120 = 0.9917: at 0.995 MAPIE stops
    with an error; ours keeps malignant in every set (and benign, with 222 rows, still bounded)."""
    cal_p, cal_y, test_p = one_split
    malignant = cal_y == 1
    assert malignant.sum() == 119
    with pytest.raises(ValueError, match="Number of samples of the score is too low"):
        mapie_sets(cal_p[malignant], cal_y[malignant], test_p, 0.995)
    model = ConformalClassifier(mondrian=True).fit(cal_p, cal_y)
    sets = model.predict_set(test_p, 0.995)
    assert sets[:, 1].all()
    assert not sets[:, 0].all()
    np.testing.assert_array_equal(
        sets[:, 0], mapie_sets(cal_p[~malignant], cal_y[~malignant], test_p, 0.995)[:, 0]
    )
