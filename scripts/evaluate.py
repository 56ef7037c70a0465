"""Repeated stratified k-fold cross-validation of the network beside scikit-learn baselines.

    python scripts/evaluate.py [--data PATH] [--folds K] [--repeats R] [--cv-seed N] [--lr F]
                               [--iterations N] [--hidden N] [--seed N] [--threshold T]
                               [--sweep T,T,...] [--no-baselines] [--out FILE] [--quiet]

Every fold refits everything on its training rows only: the min-max scaler, our TwoLayerNet and
the baselines (LogisticRegression and an RBF SVC on the same scaled inputs, a RandomForest on the
raw scores, which trees do not need scaled). Each model's scores on the held-out rows give its
accuracy, sensitivity and specificity at its decision threshold (ours at --threshold; the
baselines at their own rule: P > 0.5, or decision function > 0 for the SVC) and its ROC AUC,
all computed by `model.metrics`. The Markdown table gives mean ± standard deviation over all
folds x repeats (one value per held-out fold). scikit-learn is a dev/eval extra, never imported
by the service.
"""

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

Indices = NDArray[np.int64]
Scores = NDArray[np.float64]
METRICS: tuple[str, ...] = ("accuracy", "roc_auc", "sensitivity", "specificity")
METRIC_TITLES: dict[str, str] = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
}
NET = "TwoLayerNet"
DEFAULT_FOLDS = 10
DEFAULT_REPEATS = 5
DEFAULT_CV_SEED = 0


@dataclass(frozen=True)
class NetConfig:
    lr: float = SERVED.lr
    iterations: int = SERVED.iterations
    hidden: int = SERVED.hidden
    seed: int = SERVED.seed


@dataclass(frozen=True)
class Row:
    """One line of the table: a model at one decision threshold, one value per fold."""

    model: str
    threshold: str
    values: dict[str, list[float]]

    def mean(self, metric: str) -> float:
        return float(np.mean(self.values[metric]))

    def std(self, metric: str) -> float:
        return float(np.std(self.values[metric]))


# -- folds and per-fold fitting ---------------------------------------------------------------
def make_folds(
    y: NDArray[np.int64], folds: int, repeats: int, seed: int
) -> list[tuple[Indices, Indices]]:
    """(train, test) row indices of every fold of every repeat, stratified by class."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    zeros = np.zeros((len(y), 1))
    return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in cv.split(zeros, y)]


def fit_scaler(X_train: NDArray[np.int64]) -> MinMaxScaler:
    """The fold's scaler, fitted on its training rows only."""
    return MinMaxScaler().fit(X_train)


def net_scores(
    Xs_train: Scores, y_train: NDArray[np.int64], Xs_test: Scores, config: NetConfig
) -> Scores:
    net = TwoLayerNet(
        hidden=config.hidden, lr=config.lr, iterations=config.iterations, seed=config.seed
    )
    return net.fit(Xs_train, y_train).predict_proba(Xs_test)


@dataclass(frozen=True)
class Baseline:
    """A scikit-learn peer: its unfitted estimator, whether it reads scaled inputs, and how it
    scores rows: P(malignant) thresholded at 0.5, or the SVC's signed distance thresholded at 0
    (each the rule its own `predict` applies)."""

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

    def scores(self, X: NDArray[Any]) -> Scores:
        if self.decision_function:
            return np.asarray(self.estimator.decision_function(X), dtype=np.float64)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)


def make_baselines(seed: int) -> list[Baseline]:
    """Fixed, conventional settings; LR and SVC on the min-max scaled scores, the forest raw."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return [
        Baseline("LogisticRegression", LogisticRegression(max_iter=1000), scaled=True),
        Baseline(
            "SVC (RBF)", SVC(kernel="rbf", C=1.0, gamma="scale"), True, decision_function=True
        ),
        Baseline(
            "RandomForest",
            RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
            scaled=False,
        ),
    ]


def baseline_scores(
    X_train: NDArray[np.int64],
    Xs_train: Scores,
    y_train: NDArray[np.int64],
    X_test: NDArray[np.int64],
    Xs_test: Scores,
    seed: int,
) -> dict[str, tuple[Scores, float]]:
    """Each baseline fitted on the training rows: its scores on the test rows and threshold."""
    out: dict[str, tuple[Scores, float]] = {}
    for b in make_baselines(seed):
        b.estimator.fit(Xs_train if b.scaled else X_train, y_train)
        out[b.name] = (b.scores(Xs_test if b.scaled else X_test), b.threshold)
    return out


def fold_metrics(y: NDArray[np.int64], scores: Scores, threshold: float) -> dict[str, float]:
    m = evaluate(y, scores, threshold)
    values = {k: getattr(m, k) for k in METRICS}
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def cross_validate(
    data: Dataset,
    config: NetConfig,
    thresholds: Sequence[float],
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    cv_seed: int = DEFAULT_CV_SEED,
    baselines: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Our network at each of `thresholds` (first row first), then the baselines, per fold."""
    splits = make_folds(data.y, folds, repeats, cv_seed)
    net_rows = [Row(NET, f"P > {t:g}", {k: [] for k in METRICS}) for t in thresholds]
    base_rows = {
        b.name: Row(b.name, b.rule, {k: [] for k in METRICS})
        for b in (make_baselines(cv_seed) if baselines else [])
    }
    for i, (train_idx, test_idx) in enumerate(splits):
        X_train, y_train = data.X[train_idx], data.y[train_idx]
        X_test, y_test = data.X[test_idx], data.y[test_idx]
        scaler = fit_scaler(X_train)
        Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
        proba = net_scores(Xs_train, y_train, Xs_test, config)
        for row, t in zip(net_rows, thresholds, strict=True):
            for k, v in fold_metrics(y_test, proba, t).items():
                row.values[k].append(v)
        if baselines:
            scored = baseline_scores(X_train, Xs_train, y_train, X_test, Xs_test, seed=cv_seed)
            for name, (scores, t) in scored.items():
                for k, v in fold_metrics(y_test, scores, t).items():
                    base_rows[name].values[k].append(v)
        if progress is not None:
            progress(i + 1, len(splits))
    return [*net_rows, *base_rows.values()]


# -- report -----------------------------------------------------------------------------------
def _cell(row: Row, metric: str) -> str:
    values = np.asarray(row.values[metric])
    if np.isnan(values).any():  # a fold without one class; cannot happen with stratified folds
        n = int((~np.isnan(values)).sum())
        return f"{np.nanmean(values):.4f} ± {np.nanstd(values):.4f} (n={n})"
    return f"{row.mean(metric):.4f} ± {row.std(metric):.4f}"


def markdown_table(rows: Sequence[Row], config: NetConfig) -> str:
    head = ["model", "decision rule", *(METRIC_TITLES[k] for k in METRICS)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(METRICS)) + "|",
    ]
    for row in rows:
        name = row.model
        if name == NET:
            c = config
            name = f"{NET} 9-{c.hidden}-1 (lr {c.lr:g}, {c.iterations} it, seed {c.seed})"
        cells = [name, row.threshold, *(_cell(row, k) for k in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(
    rows: Sequence[Row], config: NetConfig, data: Dataset, folds: int, repeats: int, cv_seed: int
) -> str:
    n_pos = int(data.y.sum())
    intro = (
        f"Repeated stratified {folds}-fold cross-validation x {repeats} repeats (seed {cv_seed}) "
        f"on {len(data.y)} complete rows ({n_pos} malignant, {len(data.y) - n_pos} benign); "
        f"mean ± std over {folds * repeats} held-out folds. Scaler fitted on each training fold "
        "only; each model classifies by the decision rule shown."
    )
    return intro + "\n\n" + markdown_table(rows, config) + "\n"


# -- CLI --------------------------------------------------------------------------------------
def threshold_list(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of thresholds")
    return [probability(p) for p in parts]


def at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} must be at least 2")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="evaluate.py", description=(__doc__ or "").splitlines()[0])
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
        "--threshold", type=probability, default=SERVED.threshold, help="our decision threshold"
    )
    p.add_argument(
        "--sweep",
        type=threshold_list,
        default=[],
        help="extra thresholds for our network, from the same fits (e.g. 0.3,0.4)",
    )
    p.add_argument("--no-baselines", action="store_true", help="only our network")
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if not args.data.is_file():
        p.error(f"data file {args.data} does not exist")
    if args.out is not None and args.out.is_dir():
        p.error(f"--out {args.out} is a folder, not a file path")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_dataset_or_report("evaluate.py", args.data)
    if data is None:
        return 2
    n_minor = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    if args.folds > n_minor:
        print(
            f"evaluate.py: error: --folds {args.folds} exceeds the smaller class ({n_minor} rows)",
            file=sys.stderr,
        )
        return 2
    config = NetConfig(lr=args.lr, iterations=args.iterations, hidden=args.hidden, seed=args.seed)
    thresholds = [args.threshold, *sorted({t for t in args.sweep if t != args.threshold})]
    start = time.monotonic()

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            elapsed = time.monotonic() - start
            print(f"\rfold {done}/{total}  {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    rows = cross_validate(
        data,
        config,
        thresholds,
        folds=args.folds,
        repeats=args.repeats,
        cv_seed=args.cv_seed,
        baselines=not args.no_baselines,
        progress=progress,
    )
    if not args.quiet:
        print(file=sys.stderr)
    text = report(rows, config, data, args.folds, args.repeats, args.cv_seed)
    print(text, end="")
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"evaluate.py: error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
