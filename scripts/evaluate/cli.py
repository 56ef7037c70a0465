"""An honest evaluation of the network beside scikit-learn peers, on repeated stratified folds.

    python -m scripts.evaluate [--parts cv,grouped,temporal,conformal,scaling,regularize]
                               [--data PATH] [--folds K] [--repeats R] [--cv-seed N]
                               [--lr F] [--iterations N] [--hidden N] [--seed N]
                               [--weight-decay F] [--early-stopping] [--threshold T]
                               [--sweep T,T,...] [--no-baselines] [--calibration-fraction F]
                               [--inner-folds K] [--nested-repeats R] [--wd-grid F,F,...]
                               [--out FILE] [--csv FILE] [--report-from FILE] [--quiet]

Every fold refits everything on its training rows only: the min-max scaler, our TwoLayerNet and
the peers (LogisticRegression, an RBF SVC, k-nearest neighbours with k = 5 on the scaled inputs;
a RandomForest on the raw scores, which trees do not need scaled). The parts, each a module of
this package:

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.data import DEFAULT_DATA_PATH, Dataset
from model.defaults import SERVED
from scripts.cli import (
    OneLineParser,
    load_dataset_or_report,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from scripts.evaluate.common import (
    DEFAULT_CALIBRATION_FRACTION,
    DEFAULT_CV_SEED,
    DEFAULT_FOLDS,
    DEFAULT_REPEATS,
    PARTS,
)
from scripts.evaluate.regularize import DEFAULT_WD_GRID
from scripts.evaluate.run import make_run, report, run_parts
from scripts.evaluate.tables import frame, read_frame
from scripts.evaluate.temporal import collection_groups
from scripts.progress import ProgressLines, on_terminal

if TYPE_CHECKING:
    import pandas as pd

PROG = "scripts.evaluate"


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


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
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
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    problem = path_problem(args)
    if problem is not None:
        p.error(problem)
    if args.nested_repeats > args.repeats:
        p.error(f"--nested-repeats {args.nested_repeats} exceeds --repeats {args.repeats}")
    return args


def path_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given, checked before any model is fitted, or None."""
    if not args.data.is_file():
        return f"data file {args.data} does not exist"
    if args.report_from is not None and not args.report_from.is_file():
        return f"--report-from {args.report_from} does not exist"
    for flag in ("out", "csv"):
        path = getattr(args, flag)
        if path is not None and path.is_dir():
            return f"--{flag} {path} is a folder, not a file path"
    return None


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


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


class FoldProgress:
    """Folds done per part on stderr: one line rewritten in place on a terminal, whole lines in
    a pipe or a log (where a carriage return would run them together)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.start = quiet, time.monotonic()
        self.rewrite, self.lines = on_terminal(sys.stderr), ProgressLines(sys.stderr)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def __call__(self, part: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if not self.rewrite:
            self.lines.report(f"{part}: fold", done, total, f"{self.elapsed():.0f} s")
            return
        print(f"\r{part}: fold {done}/{total}  {self.elapsed():.0f} s  ", end="", file=sys.stderr)
        if done == total:
            print(file=sys.stderr)


def results(
    data: Dataset, args: argparse.Namespace, progress: FoldProgress
) -> "pd.DataFrame | None":
    """The run's frame: fitted now, or read back from --report-from (None if it is not one)."""
    if args.report_from is not None:
        return read_frame(args.report_from)
    return frame(run_parts(data, args, progress))


def write(path: Path, write_to: Callable[[Path], None]) -> str | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to(path)
    except OSError as exc:
        return f"cannot write {path}: {exc}"
    return None


def write_outputs(args: argparse.Namespace, text: str, df: "pd.DataFrame") -> str | None:
    """Write --out and --csv when given: the first error, or None."""
    for path, writer in (
        (args.out, lambda p: p.write_text(text, encoding="utf-8")),
        (args.csv, lambda p: df.to_csv(p, index=False)),
    ):
        if path is not None and (error := write(path, writer)) is not None:
            return error
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_dataset_or_report(PROG, args.data)
    if data is None:
        return 2
    problem = check_data(data, args)
    if problem is not None:
        return fail(problem)
    progress = FoldProgress(args.quiet)
    df = results(data, args, progress)
    if df is None:
        return fail(f"--report-from {args.report_from}: not a results CSV of {PROG}")
    text = report(df, make_run(data, args), args.parts)
    if not args.quiet:
        print(f"done in {progress.elapsed():.0f} s", file=sys.stderr)
    print(text, end="")
    error = write_outputs(args, text, df)
    return 0 if error is None else fail(error, code=1)
