"""The scikit-learn peers the network is compared with, fitted on each training fold."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scripts.evaluate.common import LR_NAME, Scored, Scores


@dataclass(frozen=True)
class Baseline:
    """A scikit-learn peer: its unfitted estimator, whether it reads scaled inputs, and how it
    scores rows: P(malignant) thresholded at 0.5, or the SVC's signed distance thresholded at 0
    (each the rule its own `predict` applies). `proba` is P(malignant) for calibration. The SVC
    has none of its own: it is wrapped in CalibratedClassifierCV (Platt's sigmoid fitted on
    5-fold cross-validated decision values, ensemble=False), whose single SVC, fitted on all
    the training rows, gives the decision values the rule thresholds."""

    name: str
    estimator: Any
    scaled: bool
    decision_function: bool = False

    @property
    def threshold(self) -> float:
        return 0.0 if self.decision_function else 0.5

    @property
    def rule(self) -> str:
        return "decision > 0" if self.decision_function else "P > 0.5"

    def proba(self, X: NDArray[Any]) -> Scores:
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)

    def scores(self, X: NDArray[Any]) -> Scores:
        if self.decision_function:
            return np.asarray(self.classifier.decision_function(X), dtype=np.float64)
        return self.proba(X)

    @property
    def classifier(self) -> Any:
        """The fitted model whose `predict` the rule reproduces (the SVC inside the wrapper)."""
        if self.decision_function:
            return self.estimator.calibrated_classifiers_[0].estimator
        return self.estimator


def make_baselines(seed: int) -> list[Baseline]:
    """Fixed, conventional settings: LR, SVC and kNN on min-max scaled scores, the forest raw."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    svc = CalibratedClassifierCV(
        SVC(kernel="rbf", C=1.0, gamma="scale"), method="sigmoid", cv=5, ensemble=False
    )
    return [
        Baseline(LR_NAME, LogisticRegression(max_iter=1000), scaled=True),
        Baseline("SVC (RBF)", svc, scaled=True, decision_function=True),
        Baseline(
            "RandomForest",
            RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
            scaled=False,
        ),
        Baseline("kNN (k = 5)", KNeighborsClassifier(n_neighbors=5), scaled=True),
    ]


def baseline_scores(
    X_train: NDArray[np.int64],
    Xs_train: Scores,
    y_train: NDArray[np.int64],
    X_test: NDArray[np.int64],
    Xs_test: Scores,
    seed: int,
) -> dict[str, Scored]:
    """Each baseline fitted on the training rows and scored on the test rows."""
    out: dict[str, Scored] = {}
    for b in make_baselines(seed):
        b.estimator.fit(Xs_train if b.scaled else X_train, y_train)
        X_eval = Xs_test if b.scaled else X_test
        out[b.name] = Scored(b.proba(X_eval), b.scores(X_eval), b.threshold)
    return out
