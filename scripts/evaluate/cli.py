"""An honest evaluation of the network beside scikit-learn peers, on repeated stratified folds.

    python scripts/evaluate.py [--parts cv,grouped,temporal,conformal,scaling,regularize]
                               [--data PATH] [--folds K] [--repeats R] [--cv-seed N]
                               [--lr F] [--iterations N] [--hidden N] [--seed N]
                               [--weight-decay F] [--early-stopping] [--threshold T]
                               [--sweep T,T,...] [--no-baselines] [--calibration-fraction F]
                               [--inner-folds K] [--nested-repeats R] [--wd-grid F,F,...]
                               [--out FILE] [--csv FILE] [--quiet]

Every fold refits everything on its training rows only: the min-max scaler, our TwoLayerNet and
the peers (LogisticRegression, an RBF SVC, k-nearest neighbours with k = 5 on the scaled inputs;
a RandomForest on the raw scores, which trees do not need scaled). The parts:

- cv: repeated stratified K-fold (10 x 5, fold seed 0). Accuracy, sensitivity and specificity at
  each model's rule (ours P > --threshold; the peers' own `predict`), ROC AUC, and calibration
  (Brier, log loss, ECE over 10 bins) pooled over each repeat's out-of-fold probabilities.
  Each peer's per-fold difference to the network gets the corrected repeated-CV t-test.
- grouped: the same, with identical score vectors kept in one fold (StratifiedGroupKFold).
- temporal: the data's eight collection groups in file order; train on the earlier groups,
  test on the next one (expanding window), metrics pooled over every tested row.
- conformal: class-conditional and marginal split-conformal sets for the network and for
  logistic regression, calibrated on rows carved from each training fold.
- scaling: Platt and temperature scaling of the network fitted on those calibration rows.
- regularize: weight decay and early stopping chosen by an inner CV in each outer training fold.

Results are one tidy pandas frame per run (--csv) and the Markdown tables docs/model-card.md shows.
scikit-learn, SciPy and pandas are dev/eval extras, never imported by the service.
"""

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.calibration import brier_score, expected_calibration_error, log_loss
from model.conformal import ConformalClassifier
from model.data import DEFAULT_DATA_PATH, Dataset
from model.defaults import SERVED
from model.metrics import evaluate
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from scripts.cli import (
    OneLineParser,
    load_dataset_or_report,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from scripts.progress import ProgressLines, on_terminal

if TYPE_CHECKING:
    import pandas as pd

Indices = NDArray[np.int64]
Scores = NDArray[np.float64]
Progress = Callable[[str, int, int], None]
METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "sensitivity", "specificity")
CALIBRATION: tuple[str, ...] = ("brier", "log_loss", "ece")
TITLES: dict[str, str] = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "brier": "Brier",
    "log_loss": "log loss",
    "ece": "ECE",
}
NET = "TwoLayerNet"
LR_NAME = "LogisticRegression"
PARTS: tuple[str, ...] = ("cv", "grouped", "temporal", "conformal", "scaling", "regularize")
DEFAULT_FOLDS = 10
DEFAULT_REPEATS = 5
DEFAULT_CV_SEED = 0
CONFIDENCES: tuple[float, ...] = (0.9, 0.95, 0.99)
DEFAULT_CALIBRATION_FRACTION = 0.25
DEFAULT_WD_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
# The UCI description's chronological groups (January 1989 to November 1991), in file order.
TEMPORAL_GROUPS: tuple[int, ...] = (367, 70, 31, 17, 48, 49, 31, 86)
P_NOISE = 0.05  # a difference with a corrected p-value above this is reported as noise


@dataclass(frozen=True)
class NetConfig:
    lr: float = SERVED.lr
    iterations: int = SERVED.iterations
    hidden: int = SERVED.hidden
    seed: int = SERVED.seed
    weight_decay: float = 0.0
    early_stopping: bool = False

    @property
    def label(self) -> str:
        text = f"{NET} 9-{self.hidden}-1 (lr {self.lr:g}, {self.iterations} it, seed {self.seed}"
        if self.weight_decay:
            text += f", weight decay {self.weight_decay:g}"
        if self.early_stopping:
            text += ", early stopping"
        return text + ")"

    @property
    def variant(self) -> str:
        """The regularisation alone: what the nested choice picks between."""
        parts = [f"weight decay {self.weight_decay:g}"] if self.weight_decay else []
        parts += ["early stopping"] if self.early_stopping else []
        return ", ".join(parts) or "none (served)"

    def network(self) -> TwoLayerNet:
        return TwoLayerNet(
            hidden=self.hidden,
            lr=self.lr,
            iterations=self.iterations,
            seed=self.seed,
            weight_decay=self.weight_decay,
            early_stopping=self.early_stopping,
        )


@dataclass(frozen=True)
class Split:
    """One held-out fold: which repeat and fold it is, its training and test row indices."""

    repeat: int
    fold: int
    train: Indices
    test: Indices


@dataclass(frozen=True)
class Scored:
    """A fitted model's answer on the test rows: P(malignant), the score its decision rule
    thresholds (and ROC AUC ranks), and that threshold."""

    proba: Scores
    score: Scores
    threshold: float


Record = dict[str, Any]


# -- folds ------------------------------------------------------------------------------------
def make_folds(
    y: NDArray[np.int64], folds: int, repeats: int, seed: int
) -> list[tuple[Indices, Indices]]:
    """(train, test) row indices of every fold of every repeat, stratified by class."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    zeros = np.zeros((len(y), 1))
    return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in cv.split(zeros, y)]


def stratified_splits(y: NDArray[np.int64], folds: int, repeats: int, seed: int) -> list[Split]:
    pairs = make_folds(y, folds, repeats, seed)
    return [Split(i // folds, i % folds, tr, te) for i, (tr, te) in enumerate(pairs)]


def duplicate_groups(X: NDArray[np.int64]) -> Indices:
    """One id per distinct score vector: rows with identical scores share an id."""
    return np.unique(X, axis=0, return_inverse=True)[1].astype(np.int64).ravel()


def grouped_splits(data: Dataset, folds: int, repeats: int, seed: int) -> list[Split]:
    """Stratified folds in which every copy of a score vector falls in the same fold; repeat r
    shuffles with seed + r."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = duplicate_groups(data.X)
    out: list[Split] = []
    for r in range(repeats):
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for f, (tr, te) in enumerate(cv.split(data.X, data.y, groups)):
            out.append(Split(r, f, tr.astype(np.int64), te.astype(np.int64)))
    return out


def collection_groups(data: Dataset) -> Indices:
    """The UCI collection group (0..7) of each complete row, from its line in the file."""
    bounds = np.cumsum(TEMPORAL_GROUPS)
    if data.n_rows_read != bounds[-1]:
        raise ValueError(
            f"the temporal groups need the UCI file's {bounds[-1]} rows, "
            f"this file has {data.n_rows_read}"
        )
    return np.searchsorted(bounds, data.line_numbers - 1, side="right").astype(np.int64)


def temporal_splits(data: Dataset) -> list[Split]:
    """Expanding window: fold g trains on groups 0..g-1 and tests on group g (g = 1..7)."""
    group = collection_groups(data)
    rows = np.arange(len(data.y), dtype=np.int64)
    return [Split(0, g, rows[group < g], rows[group == g]) for g in range(1, len(TEMPORAL_GROUPS))]


def twin_share(data: Dataset, splits: Sequence[Split]) -> float:
    """Mean share of held-out rows whose exact score vector also occurs in the training rows."""
    groups = duplicate_groups(data.X)
    return float(np.mean([np.isin(groups[s.test], groups[s.train]).mean() for s in splits]))


# -- fitting ----------------------------------------------------------------------------------
def fit_scaler(X_train: NDArray[np.int64]) -> MinMaxScaler:
    """The fold's scaler, fitted on its training rows only."""
    return MinMaxScaler().fit(X_train)


def net_scores(
    Xs_train: Scores, y_train: NDArray[np.int64], Xs_test: Scores, config: NetConfig
) -> Scores:
    return config.network().fit(Xs_train, y_train).predict_proba(Xs_test)


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


# -- metrics ----------------------------------------------------------------------------------
def fold_metrics(y: NDArray[np.int64], scores: Scores, threshold: float) -> dict[str, float]:
    m = evaluate(y, scores, threshold)
    values = {k: getattr(m, k) for k in METRICS}
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def calibration_metrics(y: NDArray[np.int64], proba: Scores) -> dict[str, float]:
    return {
        "brier": brier_score(y, proba),
        "log_loss": log_loss(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


def corrected_ttest(diffs: ArrayLike, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau and Bengio's corrected repeated-CV t-test of mean(diffs) = 0: (mean, p).

    The folds share training rows, so their differences are correlated; the variance of the
    mean is inflated from s^2 / J to (1 / J + n_test / n_train) s^2, with J - 1 degrees of
    freedom (Nadeau and Bengio 2003; Bouckaert and Frank 2004)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    d = d[~np.isnan(d)]
    mean = float(np.mean(d)) if len(d) else float("nan")
    if len(d) < 2:
        return mean, float("nan")
    var = float(np.var(d, ddof=1))
    if var == 0.0:
        return mean, 1.0 if mean == 0.0 else 0.0
    t = mean / math.sqrt((1.0 / len(d) + test_train_ratio) * var)
    return mean, float(2.0 * stats.t.sf(abs(t), df=len(d) - 1))


def test_train_ratio(splits: Sequence[Split]) -> float:
    return float(np.mean([len(s.test) / len(s.train) for s in splits]))


# -- recording --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """Where a value belongs in the tidy frame (all but its metric, value and fold)."""

    part: str
    model: str
    rule: str
    variant: str = ""
    confidence: float = float("nan")


def fold_records(key: Key, split: Split, values: dict[str, float]) -> list[Record]:
    base = {**key.__dict__, "repeat": split.repeat, "fold": split.fold, "scope": "fold"}
    return [{**base, "metric": k, "value": v} for k, v in values.items()]


def pooled_records(
    key: Key, y: NDArray[np.int64], pooled: dict[int, tuple[list[Indices], list[Scored]]]
) -> list[Record]:
    """Per repeat, every metric over all of its held-out rows together."""
    out: list[Record] = []
    for repeat, (rows, answers) in sorted(pooled.items()):
        idx = np.concatenate(rows)
        scored = Scored(
            np.concatenate([a.proba for a in answers]),
            np.concatenate([a.score for a in answers]),
            answers[0].threshold,
        )
        values = fold_metrics(y[idx], scored.score, scored.threshold)
        values |= calibration_metrics(y[idx], scored.proba)
        base = {**key.__dict__, "repeat": repeat, "fold": -1, "scope": "pooled"}
        out += [{**base, "metric": k, "value": v} for k, v in values.items()]
    return out


class Collector:
    """Per-fold answers of each (model, rule), recorded per fold and pooled per repeat."""

    def __init__(self, part: str, y: NDArray[np.int64]) -> None:
        self.part, self.y = part, y
        self.records: list[Record] = []
        self.pooled: dict[Key, dict[int, tuple[list[Indices], list[Scored]]]] = {}

    def add(self, key: Key, split: Split, answer: Scored) -> None:
        y = self.y[split.test]
        values = fold_metrics(y, answer.score, answer.threshold)
        values["brier"] = brier_score(y, answer.proba)
        self.records += fold_records(key, split, values)
        rows, answers = self.pooled.setdefault(key, {}).setdefault(split.repeat, ([], []))
        rows.append(split.test)
        answers.append(answer)

    def finish(self) -> list[Record]:
        out = list(self.records)
        for key, pooled in self.pooled.items():
            out += pooled_records(key, self.y, pooled)
        return out


# -- the parts --------------------------------------------------------------------------------
def validate(
    part: str,
    data: Dataset,
    splits: Sequence[Split],
    config: NetConfig,
    thresholds: Sequence[float],
    baselines: bool = True,
    seed: int = DEFAULT_CV_SEED,
    progress: Progress | None = None,
) -> tuple[list[Record], list[Scores]]:
    """Our network at each threshold and the peers on every split: the records, and the
    network's test probabilities per split (reused by the scaling and regularize parts)."""
    out = Collector(part, data.y)
    net_proba: list[Scores] = []
    for i, s in enumerate(splits):
        X_train, y_train, X_test = data.X[s.train], data.y[s.train], data.X[s.test]
        scaler = fit_scaler(X_train)
        Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
        proba = net_scores(Xs_train, y_train, Xs_test, config)
        net_proba.append(proba)
        for t in thresholds:
            out.add(Key(part, NET, f"P > {t:g}"), s, Scored(proba, proba, t))
        if baselines:
            scored = baseline_scores(X_train, Xs_train, y_train, X_test, Xs_test, seed=seed)
            for b in make_baselines(seed):
                out.add(Key(part, b.name, b.rule), s, scored[b.name])
        if progress is not None:
            progress(part, i + 1, len(splits))
    return out.finish(), net_proba


def carve_calibration(
    y_train: NDArray[np.int64], fraction: float, seed: int
) -> tuple[Indices, Indices]:
    """Positions (into the training fold) of the proper training rows and the calibration rows,
    stratified by class; the held-out fold is never touched."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(y_train), dtype=np.int64)
    proper, calib = train_test_split(
        positions, test_size=fraction, stratify=y_train, random_state=seed
    )
    return np.sort(proper), np.sort(calib)


def set_shares(members: NDArray[np.bool_], y: NDArray[np.int64]) -> dict[str, float]:
    size = members.sum(axis=1)
    covered = members[np.arange(len(y)), y]
    return {
        "coverage_benign": float(covered[y == 0].mean()),
        "coverage_malignant": float(covered[y == 1].mean()),
        "coverage_all": float(covered.mean()),
        "singleton": float(np.mean(size == 1)),
        "two_class": float(np.mean(size == 2)),
        "empty": float(np.mean(size == 0)),
    }


def logit(p: Scores) -> Scores:
    q = np.clip(p, 1e-15, 1.0 - 1e-15)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def platt(calib_p: Scores, calib_y: NDArray[np.int64]) -> Callable[[Scores], Scores]:
    """sigmoid(a z + b) on the logit z, (a, b) by maximum likelihood on the calibration rows
    (Platt's method without his target smoothing)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=np.inf).fit(logit(calib_p)[:, None], calib_y)
    return lambda p: np.asarray(lr.predict_proba(logit(p)[:, None])[:, 1], dtype=np.float64)


def temperature(calib_p: Scores, calib_y: NDArray[np.int64]) -> Callable[[Scores], Scores]:
    """sigmoid(z / T), T > 0 by maximum likelihood on the calibration rows."""
    from scipy.optimize import minimize_scalar

    z, y = logit(calib_p), calib_y.astype(np.float64)

    def nll(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, s) - y * s))

    T = math.exp(minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded").x)
    return lambda p: 1.0 / (1.0 + np.exp(-logit(p) / T))


def carved(
    data: Dataset,
    splits: Sequence[Split],
    config: NetConfig,
    threshold: float,
    fraction: float,
    confidences: Sequence[float],
    served_proba: Sequence[Scores] | None,
    conformal: bool = True,
    scaling: bool = True,
    seed: int = DEFAULT_CV_SEED,
    progress: Progress | None = None,
) -> list[Record]:
    """Fit the network and logistic regression on each training fold minus a stratified share
    `fraction` of calibration rows; conformal sets and post-hoc scaling are fitted on those."""
    from sklearn.linear_model import LogisticRegression

    records: list[Record] = []
    scaled = Collector("scaling", data.y)
    rule = f"P > {threshold:g}"
    for i, s in enumerate(splits):
        proper_pos, calib_pos = carve_calibration(data.y[s.train], fraction, seed + i)
        proper, calib = s.train[proper_pos], s.train[calib_pos]
        scaler = fit_scaler(data.X[proper])
        Xp, Xc, Xt = (scaler.transform(data.X[rows]) for rows in (proper, calib, s.test))
        yp, yc, yt = data.y[proper], data.y[calib], data.y[s.test]
        net = config.network().fit(Xp, yp)
        lr = LogisticRegression(max_iter=1000).fit(Xp, yp)
        models = {
            NET: (net.predict_proba(Xc), net.predict_proba(Xt)),
            LR_NAME: (lr.predict_proba(Xc)[:, 1], lr.predict_proba(Xt)[:, 1]),
        }
        if conformal:
            for name, (pc, pt) in models.items():
                for mondrian in (True, False):
                    cp = ConformalClassifier(mondrian=mondrian).fit(pc, yc)
                    kind = "class-conditional" if mondrian else "marginal"
                    for c in confidences:
                        values = set_shares(cp.predict_set(pt, c), yt)
                        q = cp.quantiles(c)
                        values["always_benign"] = float(np.isinf(q[0]))
                        values["always_malignant"] = float(np.isinf(q[1]))
                        key = Key("conformal", name, "", kind, c)
                        records += fold_records(key, s, values)
        if scaling:
            pc, pt = models[NET]
            variants = {
                "fewer training rows, unscaled": pt,
                "Platt": platt(pc, yc)(pt),
                "temperature": temperature(pc, yc)(pt),
            }
            if served_proba is not None:
                variants = {"none (whole training fold)": served_proba[i], **variants}
            for name, proba in variants.items():
                scaled.add(Key("scaling", NET, rule, name), s, Scored(proba, proba, threshold))
        if progress is not None:
            progress("conformal" if conformal else "scaling", i + 1, len(splits))
    return records + scaled.finish()


def inner_log_loss(data: Dataset, rows: Indices, config: NetConfig, folds: int, seed: int) -> float:
    """Log loss of `config` pooled over a stratified inner K-fold CV of `rows` alone."""
    from sklearn.model_selection import StratifiedKFold

    y = data.y[rows]
    oof = np.empty(len(rows))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in cv.split(np.zeros((len(rows), 1)), y):
        scaler = fit_scaler(data.X[rows[tr]])
        Xs_tr, Xs_te = scaler.transform(data.X[rows[tr]]), scaler.transform(data.X[rows[te]])
        oof[te] = net_scores(Xs_tr, y[tr], Xs_te, config)
    return log_loss(y, oof)


def choose(
    data: Dataset, rows: Indices, candidates: Sequence[NetConfig], folds: int, seed: int
) -> int:
    """Index of the candidate with the lowest inner-CV log loss on `rows` (first on ties)."""
    losses = [inner_log_loss(data, rows, c, folds, seed) for c in candidates]
    return int(np.argmin(losses))


def regularize(
    data: Dataset,
    splits: Sequence[Split],
    candidates: Sequence[NetConfig],
    threshold: float,
    inner_folds: int,
    served_proba: Sequence[Scores] | None,
    seed: int = DEFAULT_CV_SEED,
    progress: Progress | None = None,
) -> list[Record]:
    """Each candidate on the outer folds, and the nested choice: in each outer training fold,
    the candidate with the lowest inner-CV log loss, refitted there and scored on the held-out
    fold. candidates[0] is the served configuration (its fits may be reused)."""
    out = Collector("regularize", data.y)
    rule = f"P > {threshold:g}"
    records: list[Record] = []
    for i, s in enumerate(splits):
        scaler = fit_scaler(data.X[s.train])
        Xs_train, Xs_test = scaler.transform(data.X[s.train]), scaler.transform(data.X[s.test])
        answers: list[Scores] = []
        for k, c in enumerate(candidates):
            if k == 0 and served_proba is not None:
                answers.append(served_proba[i])
            else:
                answers.append(net_scores(Xs_train, data.y[s.train], Xs_test, c))
            out.add(
                Key("regularize", NET, rule, c.variant),
                s,
                Scored(answers[k], answers[k], threshold),
            )
        pick = choose(data, s.train, candidates, inner_folds, seed)
        nested = Scored(answers[pick], answers[pick], threshold)
        out.add(Key("regularize", NET, rule, "nested choice"), s, nested)
        key = Key("regularize", NET, rule, candidates[pick].variant)
        records += fold_records(key, s, {"chosen": 1.0})
        if progress is not None:
            progress("regularize", i + 1, len(splits))
    return out.finish() + records


# -- tables -----------------------------------------------------------------------------------
def read_frame(path: Path) -> "pd.DataFrame | None":
    """A frame written by --csv, or None if the file is not one."""
    import pandas as pd

    try:
        df = pd.read_csv(path, keep_default_na=False, na_values={"value": [""], "confidence": [""]})
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    expected = list(frame([]).columns)
    if list(df.columns) != expected or not pd.api.types.is_float_dtype(df["value"]):
        return None
    return df


def frame(records: Iterable[Record]) -> "pd.DataFrame":
    import pandas as pd

    columns = ["part", "model", "rule", "variant", "confidence", "repeat", "fold", "scope"]
    return pd.DataFrame.from_records(list(records), columns=[*columns, "metric", "value"])


def mean_sd(values: "pd.Series") -> str:
    v = values.dropna()
    if len(values) == 1:  # one repeat: no spread to show
        return f"{v.mean():.4f}"
    if len(v) < len(values):
        return f"{v.mean():.4f} ± {v.std():.4f} (n={len(v)})"
    return f"{v.mean():.4f} ± {v.std():.4f}"


def markdown(table: "pd.DataFrame") -> str:
    """A pipe table: label columns (text that is not a figure) left, figures right."""
    figures = tuple("0123456789+-")
    align = [
        "right" if all(str(v).startswith(figures) for v in table[c]) else "left" for c in table
    ]
    text: str = table.to_markdown(index=False, colalign=align, disable_numparse=True)
    return text


def summary(df: "pd.DataFrame", part: str, scope: str, metrics: Sequence[str]) -> "pd.DataFrame":
    """mean ± sd of each (model, rule, variant) over folds (scope "fold") or repeats ("pooled")."""
    rows = df[(df.part == part) & (df.scope == scope) & df.metric.isin(metrics)]
    keys = ["model", "rule", "variant"]
    cells = rows.groupby([*keys, "metric"], sort=False)["value"].apply(mean_sd).unstack("metric")
    table = cells.reindex(columns=list(metrics)).reset_index()
    return table.rename(columns=TITLES)


def label_models(table: "pd.DataFrame", config: NetConfig) -> "pd.DataFrame":
    """The table with the network's full label and without the (empty) variant column."""
    return table.assign(model=table["model"].replace({NET: config.label})).drop(columns="variant")


def ttest_table(
    df: "pd.DataFrame",
    part: str,
    reference: tuple[str, str, str],
    ratio: float,
    metrics: Sequence[str] = (*METRICS, "brier"),
) -> "pd.DataFrame":
    """Each other (model, rule, variant)'s mean per-fold difference to `reference` and its
    corrected t-test p-value."""
    rows = df[(df.part == part) & (df.scope == "fold") & df.metric.isin(metrics)]
    wide = rows.pivot_table(
        index=["repeat", "fold"], columns=["model", "rule", "variant", "metric"], values="value"
    )
    out: list[dict[str, str]] = []
    in_order = rows[["model", "rule", "variant"]].drop_duplicates().itertuples(index=False)
    others = [tuple(k) for k in in_order if tuple(k) != reference]
    for model, rule, variant in others:
        row = {"model": model, "rule": rule, "variant": variant}
        for metric in metrics:
            diff = wide[(model, rule, variant, metric)] - wide[(*reference, metric)]
            mean, p = corrected_ttest(diff.to_numpy(), ratio)
            row[TITLES[metric]] = f"{mean:+.4f} (p {p:.2f})"
        out.append(row)
    import pandas as pd

    return pd.DataFrame(out)


def noise_sentence(
    df: "pd.DataFrame", part: str, reference: tuple[str, str, str], ratio: float
) -> str:
    rows = df[(df.part == part) & (df.scope == "fold") & df.metric.isin(METRICS)]
    wide = rows.pivot_table(
        index=["repeat", "fold"], columns=["model", "rule", "variant", "metric"], values="value"
    )
    real: list[str] = []
    # pivoting on four columns gives four-level columns, which the stubs type as Index[str]
    for model, rule, variant, metric in cast("pd.MultiIndex", wide.columns):
        if model == reference[0] or metric not in METRICS:  # the network's other rules too
            continue
        mean, p = corrected_ttest(
            (wide[(model, rule, variant, metric)] - wide[(*reference, metric)]).to_numpy(), ratio
        )
        if p <= P_NOISE:
            real.append(f"{model} {TITLES[metric]} ({mean:+.4f}, p {p:.3f})")
    if not real:
        return f"Every difference to the network is noise (corrected p > {P_NOISE:g})."
    return (
        f"Differences with corrected p <= {P_NOISE:g}: "
        + "; ".join(real)
        + "; every other is noise."
    )


# -- report -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """What a report needs besides the frame: the settings and the figures computed aside."""

    data: Dataset
    config: NetConfig
    threshold: float
    folds: int
    repeats: int
    cv_seed: int
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION
    inner_folds: int = 3
    nested_repeats: int = 1
    cv_ratio: float = 0.0
    grouped_ratio: float = 0.0
    cv_twins: float = float("nan")
    grouped_twins: float = float("nan")

    @property
    def reference(self) -> tuple[str, str, str]:
        return (NET, f"P > {self.threshold:g}", "")


def cv_section(df: "pd.DataFrame", run: Run, part: str = "cv") -> str:
    table = label_models(summary(df, part, "fold", METRICS), run.config)
    calib = summary(df, part, "pooled", CALIBRATION)
    calib = label_models(calib[(calib.model != NET) | (calib.rule == run.reference[1])], run.config)
    out = [
        markdown(table),
        "Calibration, pooled over each repeat's out-of-fold probabilities "
        f"(mean ± sd over {run.repeats} repeats; ECE over 10 equal-width bins):",
        markdown(calib),
    ]
    if set(df[df.part == part].model) == {NET}:  # --no-baselines: no peer to test
        return "\n\n".join(out)
    ratio = run.cv_ratio if part == "cv" else run.grouped_ratio
    tests = ttest_table(df, part, run.reference, ratio)
    tests = tests[tests.model != NET].drop(columns="variant")
    out += [
        "Each peer minus the network at its served rule, mean over folds, with the "
        "corrected repeated-CV t-test's two-sided p-value (Nadeau-Bengio, "
        f"n_test/n_train = {ratio:.3f}):",
        markdown(tests),
        noise_sentence(df, part, run.reference, ratio),
    ]
    return "\n\n".join(out)


def report_cv(df: "pd.DataFrame", run: Run) -> str:
    n, n_pos = len(run.data.y), int(run.data.y.sum())
    intro = (
        f"Repeated stratified {run.folds}-fold cross-validation x {run.repeats} repeats "
        f"(seed {run.cv_seed}) on {n} complete rows ({n_pos} malignant, {n - n_pos} benign); "
        f"mean ± sd over {run.folds * run.repeats} held-out folds. Scaler fitted on each "
        "training fold only; each model classifies by the decision rule shown. "
        f"{run.cv_twins:.0%} of held-out rows have an identical score vector among the "
        "training rows."
    )
    return "### Repeated cross-validation\n\n" + intro + "\n\n" + cv_section(df, run)


def report_grouped(df: "pd.DataFrame", run: Run) -> str:
    distinct = len(np.unique(run.data.X, axis=0))
    intro = (
        f"Grouped: the same {run.folds} x {run.repeats} scheme with StratifiedGroupKFold, each of "
        f"the {distinct} distinct score vectors (of {len(run.data.y)} rows) in one fold only, so "
        f"no held-out row has a twin in training ({run.grouped_twins:.0%})."
    )
    return "### Grouped cross-validation\n\n" + intro + "\n\n" + cv_section(df, run, "grouped")


def report_temporal(df: "pd.DataFrame", run: Run) -> str:
    group = collection_groups(run.data)
    rows = df[(df.part == "temporal") & (df.scope == "pooled")]
    pooled = rows.pivot_table(index=["model", "rule"], columns="metric", values="value", sort=False)
    pooled = pooled.reindex(columns=[*METRICS, *CALIBRATION]).map(lambda v: f"{v:.4f}")
    pooled = pooled.reset_index().rename(columns=TITLES)
    pooled["model"] = pooled["model"].replace({NET: run.config.label})
    acc = df[(df.part == "temporal") & (df.scope == "fold") & (df.metric == "accuracy")]
    per = acc.pivot_table(index=["model", "rule"], columns="fold", values="value", sort=False)
    per.columns = [
        f"{g + 1} ({int(np.sum(group == g))}, {int(run.data.y[group == g].sum())} m)"
        for g in cast("pd.Index[int]", per.columns)  # the fold numbers
    ]
    per = per.map(lambda v: f"{v:.3f}").reset_index()
    n_test = int(np.sum(group > 0))
    intro = (
        "Temporal: the eight collection groups in file order (UCI: 367, 70, 31, 17, 48, 49, 31 "
        f"and 86 rows, {len(run.data.y)} complete). Each later group is predicted by models "
        "trained on all earlier groups (expanding window); metrics over all "
        f"{n_test} predicted rows together:"
    )
    shares = [float(run.data.y[group == g].mean()) for g in range(len(TEMPORAL_GROUPS))]
    per_intro = (
        "Accuracy per predicted group (its complete rows, malignant among them). Group 1 is "
        f"{shares[0]:.0%} malignant, the later groups {min(shares[1:]):.0%} to "
        f"{max(shares[1:]):.0%}: the class mix drifts."
    )
    return "\n\n".join(
        ["### Temporal validation", intro, markdown(pooled), per_intro, markdown(per)]
    )


def coverage_holds(values: "pd.Series", target: float) -> bool:
    """Mean coverage at least target - 3 standard errors (sd over folds / sqrt(folds))."""
    se = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return bool(values.mean() >= target - 3.0 * se)


def report_conformal(df: "pd.DataFrame", run: Run) -> str:
    rows = df[df.part == "conformal"]
    shown = ["coverage_benign", "coverage_malignant", "coverage_all", "singleton", "two_class"]
    shown += ["empty"]
    out: list[dict[str, str]] = []
    for key, g in rows.groupby(["model", "variant", "confidence"], sort=False):
        model, variant, conf = cast("tuple[str, str, float]", key)
        values = {m: g[g.metric == m]["value"] for m in (*shown, "always_malignant")}
        checked = ["coverage_benign", "coverage_malignant"]
        if variant == "marginal":
            checked = ["coverage_all"]
        holds = all(coverage_holds(values[m], conf) for m in checked)
        row = {"model": model, "calibration": variant, "confidence": f"{conf:g}"}
        row |= {
            m.replace("_", " "): f"{values[m].mean():.3f} ± {values[m].std():.3f}" for m in shown
        }
        row["holds (3 SE)"] = "yes" if holds else "**no**"
        row["malignant always in set"] = f"{values['always_malignant'].mean():.0%}"
        out.append(row)
    import pandas as pd

    table = pd.DataFrame(out)
    intro = (
        f"Split-conformal prediction sets on the same {run.folds} x {run.repeats} folds: in each "
        f"training fold a stratified {run.calibration_fraction:g} of the rows is set aside for "
        "calibration (never the held-out fold), the model is fitted on the rest, and the sets "
        "are scored on the held-out fold. Per-class coverage, overall coverage and the shares "
        "of one-class, two-class and empty sets, mean ± sd over folds; 'holds' checks that mean "
        "coverage is at least the target minus three standard errors (per class for "
        "class-conditional sets, overall for marginal ones, which promise only that). "
        "'Malignant always in set': folds whose malignant calibration rows are too few for the "
        "confidence (n / (n + 1) below it), so malignant is in every set."
    )
    return "### Conformal coverage\n\n" + intro + "\n\n" + markdown(table)


def scaling_verdict(df: "pd.DataFrame") -> str:
    rows = df[(df.part == "scaling") & (df.scope == "pooled")]
    means = rows.groupby(["variant", "metric"])["value"].mean()
    folds = df[(df.part == "scaling") & (df.scope == "fold") & (df.metric == "roc_auc")]
    auc = folds.groupby("variant")["value"].mean()
    base = "none (whole training fold)"
    if base not in auc:
        return "Without the cv part's fits there is no served baseline to compare with."
    lines: list[str] = []
    for v in ("Platt", "temperature"):
        better = (
            means[(v, "ece")] < means[(base, "ece")]
            and means[(v, "brier")] < means[(base, "brier")]
        )
        keeps_auc = auc[v] >= auc[base]
        verdict = "adopt" if better and keeps_auc else "do not adopt"
        lines.append(
            f"{v}: ECE {means[(v, 'ece')]:.4f} vs {means[(base, 'ece')]:.4f}, Brier "
            f"{means[(v, 'brier')]:.4f} vs {means[(base, 'brier')]:.4f}, ROC AUC {auc[v]:.4f} "
            f"vs {auc[base]:.4f}: {verdict}."
        )
    return " ".join(lines)


def report_scaling(df: "pd.DataFrame", run: Run) -> str:
    calib = summary(df, "scaling", "pooled", CALIBRATION)
    auc = summary(df, "scaling", "fold", ("roc_auc", "brier"))
    table = calib.merge(auc.drop(columns="Brier"), on=["model", "rule", "variant"])
    table = table.drop(columns=["model", "rule"]).rename(columns={"variant": "post-hoc scaling"})
    intro = (
        "Post-hoc scaling of the network, fitted on the conformal part's calibration rows and "
        "judged on the held-out folds (nested: nothing of the held-out fold is seen). Brier, "
        "log loss and ECE pooled per repeat; ROC AUC per fold. The rule: adopt a scaling only "
        "if it lowers both ECE and Brier without lowering ROC AUC, against the served model "
        "trained on the whole training fold."
    )
    return "\n\n".join(["### Post-hoc scaling", intro, markdown(table), scaling_verdict(df)])


def report_regularize(df: "pd.DataFrame", run: Run) -> str:
    folds = summary(df, "regularize", "fold", METRICS)
    calib = summary(df, "regularize", "pooled", CALIBRATION)
    table = folds.merge(calib, on=["model", "rule", "variant"]).drop(columns=["model", "rule"])
    table = table.rename(columns={"variant": "regularisation"})
    reference = (NET, run.reference[1], "none (served)")
    ratio = run.cv_ratio
    tests = ttest_table(df, "regularize", reference, ratio).drop(columns=["model", "rule"])
    tests = tests.rename(columns={"variant": "regularisation"})
    chosen = df[(df.part == "regularize") & (df.metric == "chosen") & (df.scope == "fold")]
    counts = chosen.groupby("variant")["value"].sum().astype(int)
    picks = ", ".join(f"{v} {n} times" for v, n in counts.sort_values(ascending=False).items())
    n_outer = run.folds * run.nested_repeats
    intro = (
        f"Weight decay and early stopping (10% of the training rows held out, patience 10 "
        f"checks of 100 iterations, best parameters kept), on the first {run.nested_repeats} "
        f"of the {run.repeats} repeats of the same folds ({n_outer} outer folds; the inner CV "
        "multiplies the cost). The nested choice picks, in each "
        f"outer training fold, the candidate with the lowest log loss over an inner stratified "
        f"{run.inner_folds}-fold CV of that fold alone, refits it there and scores the held-out "
        f"fold. It picked {picks}."
    )
    everything = df[(df.part == "regularize") & (df.scope == "all rows")]
    choice = (
        f"The same inner CV on all {len(run.data.y)} rows picks: {everything.variant.iloc[0]}."
        if len(everything)
        else ""
    )
    return "\n\n".join(
        [
            "### Weight decay and early stopping",
            intro,
            markdown(table),
            "Each minus the served configuration, mean over outer folds (corrected t-test p):",
            markdown(tests),
            choice,
        ]
    ).rstrip()


SECTIONS: dict[str, Callable[["pd.DataFrame", Run], str]] = {
    "cv": report_cv,
    "grouped": report_grouped,
    "temporal": report_temporal,
    "conformal": report_conformal,
    "scaling": report_scaling,
    "regularize": report_regularize,
}


def report(df: "pd.DataFrame", run: Run, parts: Sequence[str]) -> str:
    return "\n\n".join(SECTIONS[p](df, run) for p in PARTS if p in parts) + "\n"


# -- CLI --------------------------------------------------------------------------------------
def comma_list(convert: Callable[[str], Any], what: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        parts = [p.strip() for p in text.split(",")]
        if any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}")
        return [convert(p) for p in parts]

    return parse


threshold_list = comma_list(probability, "thresholds")


def part_name(text: str) -> str:
    if text not in PARTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(PARTS)}")
    return text


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def open_fraction(text: str) -> float:
    value = probability(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must lie strictly between 0 and 1")
    return value


def at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} must be at least 2")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="evaluate.py", description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--parts",
        type=comma_list(part_name, "parts"),
        default=list(PARTS),
        help=f"which parts to run, comma-separated (default all: {','.join(PARTS)})",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="UCI-format CSV")
    p.add_argument("--folds", type=at_least_two, default=DEFAULT_FOLDS, help="folds per repeat")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS)
    p.add_argument(
        "--cv-seed", type=non_negative_int, default=DEFAULT_CV_SEED, help="fold shuffling seed"
    )
    p.add_argument("--lr", type=positive_float, default=SERVED.lr, help="learning rate")
    p.add_argument("--iterations", type=positive_int, default=SERVED.iterations)
    p.add_argument("--hidden", type=positive_int, default=SERVED.hidden, help="hidden units")
    p.add_argument("--seed", type=non_negative_int, default=SERVED.seed, help="network init seed")
    p.add_argument(
        "--weight-decay", type=non_negative_float, default=0.0, help="L2 penalty on the weights"
    )
    p.add_argument(
        "--early-stopping", action="store_true", help="stop on 10%% held-out training rows"
    )
    p.add_argument(
        "--threshold", type=probability, default=SERVED.threshold, help="our decision threshold"
    )
    p.add_argument(
        "--sweep",
        type=threshold_list,
        default=[],
        help="extra thresholds for our network, from the same fits (e.g. 0.3,0.4)",
    )
    p.add_argument("--no-baselines", action="store_true", help="only our network")
    p.add_argument(
        "--calibration-fraction",
        type=open_fraction,
        default=DEFAULT_CALIBRATION_FRACTION,
        help="share of each training fold set aside for conformal and scaling calibration",
    )
    p.add_argument(
        "--inner-folds", type=at_least_two, default=3, help="inner CV folds of the nested choice"
    )
    p.add_argument(
        "--nested-repeats",
        type=positive_int,
        default=1,
        help="outer repeats the regularize part runs on (its cost is inner folds x candidates)",
    )
    p.add_argument(
        "--wd-grid",
        type=comma_list(non_negative_float, "weight decays"),
        default=list(DEFAULT_WD_GRID),
        help="weight decays the regularize part tries",
    )
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    p.add_argument("--csv", type=Path, help="write the tidy results frame to this CSV file")
    p.add_argument(
        "--report-from",
        type=Path,
        help="fit nothing: rebuild the report from a --csv file of a run with the same flags",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if not args.data.is_file():
        p.error(f"data file {args.data} does not exist")
    if args.report_from is not None and not args.report_from.is_file():
        p.error(f"--report-from {args.report_from} does not exist")
    for flag in ("out", "csv"):
        path = getattr(args, flag)
        if path is not None and path.is_dir():
            p.error(f"--{flag} {path} is a folder, not a file path")
    if args.nested_repeats > args.repeats:
        p.error(f"--nested-repeats {args.nested_repeats} exceeds --repeats {args.repeats}")
    return args


def fail(message: str) -> int:
    print(f"evaluate.py: error: {message}", file=sys.stderr)
    return 2


def check_data(data: Dataset, args: argparse.Namespace) -> str | None:
    """Why this data cannot support the requested run, or None."""
    n_minor = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    if args.folds > n_minor:
        return f"--folds {args.folds} exceeds the smaller class ({n_minor} rows)"
    if "temporal" in args.parts:
        try:
            collection_groups(data)
        except ValueError as exc:
            return f"--parts temporal: {exc}"
    return None


def net_config(args: argparse.Namespace) -> NetConfig:
    return NetConfig(
        args.lr, args.iterations, args.hidden, args.seed, args.weight_decay, args.early_stopping
    )


def make_run(data: Dataset, args: argparse.Namespace) -> Run:
    """The report's settings and the split statistics (cheap: no model is fitted)."""
    splits = stratified_splits(data.y, args.folds, args.repeats, args.cv_seed)
    grouped = grouped_splits(data, args.folds, args.repeats, args.cv_seed)
    return Run(
        data, net_config(args), args.threshold, args.folds, args.repeats, args.cv_seed,
        args.calibration_fraction, args.inner_folds, args.nested_repeats,
        cv_ratio=test_train_ratio(splits), grouped_ratio=test_train_ratio(grouped),
        cv_twins=twin_share(data, splits), grouped_twins=twin_share(data, grouped),
    )  # fmt: skip


def run_parts(data: Dataset, args: argparse.Namespace, progress: Progress) -> list[Record]:
    config = net_config(args)
    parts, seed = set(args.parts), args.cv_seed
    thresholds = [args.threshold, *sorted({t for t in args.sweep if t != args.threshold})]
    splits = stratified_splits(data.y, args.folds, args.repeats, seed)
    records: list[Record] = []
    served: list[Scores] | None = None
    if parts & {"cv", "scaling", "regularize"}:
        peers = "cv" in parts and not args.no_baselines
        cv_records, served = validate("cv", data, splits, config, thresholds, peers, seed, progress)
        records += cv_records if "cv" in parts else []
    if "grouped" in parts:
        g = grouped_splits(data, args.folds, args.repeats, seed)
        records += validate(
            "grouped", data, g, config, [args.threshold], not args.no_baselines, seed, progress
        )[0]
    if "temporal" in parts:
        t = temporal_splits(data)
        records += validate(
            "temporal", data, t, config, [args.threshold], not args.no_baselines, seed, progress
        )[0]
    if parts & {"conformal", "scaling"}:
        records += carved(
            data, splits, config, args.threshold, args.calibration_fraction, CONFIDENCES,
            served, "conformal" in parts, "scaling" in parts, seed, progress,
        )  # fmt: skip
    if "regularize" in parts:
        candidates = [config, *(replace(config, weight_decay=w) for w in args.wd_grid if w)]
        candidates.append(replace(config, early_stopping=True))
        outer = splits[: args.folds * args.nested_repeats]
        records += regularize(
            data, outer, candidates, args.threshold, args.inner_folds, served, seed, progress
        )
        everything = np.arange(len(data.y), dtype=np.int64)
        pick = choose(data, everything, candidates, args.inner_folds, seed)
        records.append(
            {**Key("regularize", NET, "", candidates[pick].variant).__dict__, "repeat": -1}
            | {"fold": -1, "scope": "all rows", "metric": "chosen", "value": 1.0}
        )
    return records


def write(path: Path, write_to: Callable[[Path], None]) -> str | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to(path)
    except OSError as exc:
        return f"cannot write {path}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_dataset_or_report("evaluate.py", args.data)
    if data is None:
        return 2
    problem = check_data(data, args)
    if problem is not None:
        return fail(problem)
    start = time.monotonic()
    # One line rewritten in place on a terminal; whole lines in a pipe or a log.
    rewrite, lines = on_terminal(sys.stderr), ProgressLines(sys.stderr)

    def progress(part: str, done: int, total: int) -> None:
        if args.quiet:
            return
        elapsed = time.monotonic() - start
        if not rewrite:
            lines.report(f"{part}: fold", done, total, f"{elapsed:.0f} s")
            return
        print(f"\r{part}: fold {done}/{total}  {elapsed:.0f} s  ", end="", file=sys.stderr)
        if done == total:
            print(file=sys.stderr)

    if args.report_from is not None:
        df = read_frame(args.report_from)
        if df is None:
            return fail(f"--report-from {args.report_from}: not a results CSV of evaluate.py")
    else:
        df = frame(run_parts(data, args, progress))
    run = make_run(data, args)
    text = report(df, run, args.parts)
    if not args.quiet:
        print(f"done in {time.monotonic() - start:.0f} s", file=sys.stderr)
    print(text, end="")
    for path, writer in (
        (args.out, lambda p: p.write_text(text, encoding="utf-8")),
        (args.csv, lambda p: df.to_csv(p, index=False)),
    ):
        if path is not None and (error := write(path, writer)) is not None:
            print(f"evaluate.py: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
