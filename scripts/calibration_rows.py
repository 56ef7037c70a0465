"""Where the conformal calibration rows come from: cross-conformal on the training rows, as the
served artifact does, against a three-way split, both measured on the artifact's validation rows.

    python scripts/calibration_rows.py [--data PATH] [--folds K] [--calibration-fraction F]
                                       [--lr F] [--iterations N] [--hidden N] [--seed N]
                                       [--threshold T]

- cross-conformal: the network trained on all training rows (the served one); its calibration
  scores are the out-of-fold probabilities of the training rows from K networks, each trained
  on the other K - 1 folds (model/training.py).
- three-way split: a stratified share F of the training rows is held out; the network is trained
  on the rest, and the held-out rows are its calibration rows.

The validation rows are the same for both (the served split). It prints a Markdown table: per
design and confidence, the share of benign and of malignant validation rows whose set holds
their class, and the shares of one-class, two-class and empty sets; then each network's
validation accuracy, ROC AUC and calibration.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.artifact import TrainingSettings
from model.calibration import calibration_metrics
from model.conformal import REPORT_CONFIDENCES, ConformalClassifier, summarize_sets
from model.data import DEFAULT_DATA_PATH, Dataset
from model.defaults import SERVED
from model.metrics import evaluate
from model.splits import make_split, stratified_split
from model.training import DEFAULT_CALIBRATION_FOLDS, fit_network, out_of_fold_proba
from scripts.cli import (
    OneLineParser,
    at_least_two,
    load_dataset_or_report,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)

DEFAULT_CALIBRATION_FRACTION = 0.25  # 137 of the 546 training rows: as many as validate


@dataclass(frozen=True)
class Design:
    name: str
    n_fit: int
    conformal: ConformalClassifier
    valid_proba: NDArray[np.float64]


def cross_conformal_design(
    data: Dataset, train_idx: NDArray[np.int64], valid_idx: NDArray[np.int64],
    settings: TrainingSettings, folds: int,
) -> Design:  # fmt: skip
    X, y = data.X[train_idx], data.y[train_idx]
    scaler, network = fit_network(X, y, settings)
    oof = out_of_fold_proba(X, y, settings, folds, settings.seed)
    return Design(
        f"cross-conformal, {folds} folds",
        len(train_idx),
        ConformalClassifier(mondrian=True).fit(oof, y),
        network.predict_proba(scaler.transform(data.X[valid_idx])),
    )


def three_way_design(
    data: Dataset, train_idx: NDArray[np.int64], valid_idx: NDArray[np.int64],
    settings: TrainingSettings, fraction: float,
) -> Design:  # fmt: skip
    fit_pos, cal_pos = stratified_split(data.y[train_idx], settings.seed, fraction)
    fit_idx, cal_idx = train_idx[fit_pos], train_idx[cal_pos]
    scaler, network = fit_network(data.X[fit_idx], data.y[fit_idx], settings)
    cal_proba = network.predict_proba(scaler.transform(data.X[cal_idx]))
    return Design(
        f"three-way split, {fraction:g} of training rows calibrate",
        len(fit_idx),
        ConformalClassifier(mondrian=True).fit(cal_proba, data.y[cal_idx]),
        network.predict_proba(scaler.transform(data.X[valid_idx])),
    )


def coverage_table(designs: list[Design], valid_y: NDArray[np.int64]) -> str:
    lines = [
        "| calibration | confidence | benign coverage | malignant coverage | one class | both "
        "(refer) | empty (refer) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d in designs:
        for confidence in REPORT_CONFIDENCES:
            s = summarize_sets(
                d.conformal.predict_set(d.valid_proba, confidence), valid_y, confidence
            )
            lines.append(
                f"| {d.name} | {confidence:g} | {s.coverage[0]:.4f} | {s.coverage[1]:.4f}"
                f" | {s.singleton:.3f} | {s.both:.3f} | {s.empty:.3f} |"
            )
    return "\n".join(lines)


def network_table(designs: list[Design], valid_y: NDArray[np.int64], threshold: float) -> str:
    lines = [
        "| calibration | network trained on | calibration rows (benign / malignant) | highest "
        f"supported confidence (benign / malignant) | accuracy at {threshold:g} | ROC AUC | Brier "
        "| ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in designs:
        n = [len(s) for s in d.conformal.scores_]
        top = d.conformal.max_confidence()
        m = evaluate(valid_y, d.valid_proba, threshold)
        c = calibration_metrics(valid_y, d.valid_proba)
        lines.append(
            f"| {d.name} | {d.n_fit} rows | {n[0]} / {n[1]} | {top[0]:.4f} / {top[1]:.4f}"
            f" | {m.accuracy:.4f} | {m.roc_auc:.4f} | {c.brier_score:.4f} | {c.ece:.4f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="calibration_rows.py", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="UCI-format CSV")
    p.add_argument("--folds", type=at_least_two, default=DEFAULT_CALIBRATION_FOLDS)
    p.add_argument(
        "--calibration-fraction",
        type=probability,
        default=DEFAULT_CALIBRATION_FRACTION,
        help="share of the training rows the three-way split holds out to calibrate",
    )
    p.add_argument("--lr", type=positive_float, default=SERVED.lr, help="learning rate")
    p.add_argument("--iterations", type=positive_int, default=SERVED.iterations)
    p.add_argument("--hidden", type=positive_int, default=SERVED.hidden, help="hidden units")
    p.add_argument("--seed", type=non_negative_int, default=SERVED.seed, help="init and split seed")
    p.add_argument("--threshold", type=probability, default=SERVED.threshold)
    args = p.parse_args(argv)
    if not args.data.is_file():
        p.error(f"data file {args.data} does not exist")
    if not 0.0 < args.calibration_fraction < 1.0:
        p.error("--calibration-fraction must lie strictly between 0 and 1")
    if args.folds > 100:
        p.error("--folds must be at most 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_dataset_or_report("calibration_rows.py", args.data)
    if data is None:
        return 2
    settings = TrainingSettings(
        split=SERVED.split, lr=args.lr, iterations=args.iterations, hidden=args.hidden,
        seed=args.seed,
    )  # fmt: skip
    train_idx, valid_idx = make_split(SERVED.split, data.y, args.seed)  # type: ignore[arg-type]
    valid_y = data.y[valid_idx]
    designs = [
        cross_conformal_design(data, train_idx, valid_idx, settings, args.folds),
        three_way_design(data, train_idx, valid_idx, settings, args.calibration_fraction),
    ]
    n_benign = int((valid_y == 0).sum())
    print(
        f"Validation rows: {len(valid_y)} ({n_benign} benign, {len(valid_y) - n_benign} "
        f"malignant); lr {args.lr:g}, {args.iterations} iterations, {args.hidden} hidden, "
        f"seed {args.seed}.\n"
    )
    print(coverage_table(designs, valid_y))
    print()
    print(network_table(designs, valid_y, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
