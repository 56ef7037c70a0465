"""Train the network, print the article's threshold table, write plots and the artifact.

python scripts/train.py [--data PATH] [--out PATH] [--split seed|stratified] [--lr F]
                        [--iterations N] [--hidden N] [--seed N] [--threshold T]
                        [--calibration-folds K] [--plots DIR]
python scripts/train.py --promote [--out PATH]

Training writes model/weights.candidate.json by default, beside the served model/weights.json,
which only `--promote` (`make promote`) replaces: it checks the candidate, puts its exact bytes in
place of the served artifact and prints both content hashes. A new BLAS kernel or library can
train a model other than the committed one, so serving a retrained model is always a choice.

Besides the served network, it trains K more with the same settings for the conformal
calibration scores (cross-conformal on the training rows; see model/training.py), and reports
calibration (Brier, log loss, ECE) and the prediction sets' coverage on the validation rows.
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.artifact import (
    DEFAULT_ARTIFACT_PATH,
    REPORT_THRESHOLDS,
    ArtifactError,
    TrainingSettings,
    load_artifact,
    parse_artifact,
    read_artifact_bytes,
)
from model.conformal import REPORT_CONFIDENCES
from model.data import DEFAULT_DATA_PATH
from model.defaults import SERVED
from model.splits import SPLITS
from model.training import DEFAULT_CALIBRATION_FOLDS, TrainingResult, train
from scripts.cli import (
    OneLineParser,
    at_least_two,
    load_dataset_or_report,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from scripts.progress import ProgressLines, on_terminal

MAX_CALIBRATION_FOLDS = 100  # each fold trains one more network
DEFAULT_PLOTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "plots"
# Beside the served artifact (git ignores it): training never replaces what the service serves.
CANDIDATE_PATH: Final = DEFAULT_ARTIFACT_PATH.with_name("weights.candidate.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="UCI-format CSV")
    p.add_argument(
        "--out",
        type=Path,
        default=CANDIDATE_PATH,
        help="artifact to write (with --promote: the candidate to serve)",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="train nothing: replace the served model/weights.json with the --out artifact",
    )
    p.add_argument("--split", choices=SPLITS, default=SERVED.split)
    p.add_argument("--lr", type=positive_float, default=SERVED.lr, help="learning rate")
    p.add_argument("--iterations", type=positive_int, default=SERVED.iterations)
    p.add_argument("--hidden", type=positive_int, default=SERVED.hidden, help="hidden units")
    p.add_argument("--seed", type=non_negative_int, default=SERVED.seed, help="init and split seed")
    p.add_argument(
        "--threshold", type=probability, default=SERVED.threshold, help="served default threshold"
    )
    p.add_argument(
        "--calibration-folds",
        type=at_least_two,
        default=DEFAULT_CALIBRATION_FOLDS,
        help="folds of the training rows for the cross-conformal calibration scores",
    )
    p.add_argument("--plots", type=Path, default=DEFAULT_PLOTS_DIR, help="folder for PNG plots")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.promote and not args.out.is_file():
        p.error(f"--promote: no artifact at {args.out} (make train writes one)")
    if not args.data.is_file():
        p.error(f"data file {args.data} does not exist")
    if args.calibration_folds > MAX_CALIBRATION_FOLDS:
        p.error(f"--calibration-folds must be at most {MAX_CALIBRATION_FOLDS}")
    if args.out.exists() and args.out.is_dir():
        p.error(f"--out {args.out} is a folder, not a file path")
    return args


def print_report(result: TrainingResult) -> None:
    art = result.artifact
    print(f"\n{'threshold':>9}  {'train acc':>9}  {'valid acc':>9}")
    for t in sorted({*REPORT_THRESHOLDS, art.default_threshold}):
        key = f"{t:g}"
        train_acc = art.train_metrics[key]["accuracy"]
        valid_acc = art.valid_metrics[key]["accuracy"]
        print(f"{t:>9.2f}  {train_acc:>9.4f}  {valid_acc:>9.4f}")
    m = art.validation_metrics()
    cm = m.confusion
    print(f"\nvalidation confusion matrix at threshold {art.default_threshold:g} (rows actual):")
    print(f"{'':>16}{'pred benign':>12}{'pred malig.':>12}")
    print(f"{'actual benign':>16}{cm.tn:>12}{cm.fp:>12}")
    print(f"{'actual malig.':>16}{cm.fn:>12}{cm.tp:>12}")
    print(
        f"accuracy {m.accuracy:.4f}  sensitivity {m.sensitivity}  specificity {m.specificity}"
        f"  ROC AUC {m.roc_auc}"
    )
    c = art.calibration_metrics()
    print(
        f"calibration (validation, no threshold): Brier {c.brier_score:.4f}"
        f"  log loss {c.log_loss:.4f}  ECE (10 bins) {c.ece:.4f}"
    )
    print_conformal_report(result)


def print_conformal_report(result: TrainingResult) -> None:
    art = result.artifact
    cal = art.conformal
    clf = cal.classifier()
    n = [len(cal.benign), len(cal.malignant)]
    top = clf.max_confidence()
    print(
        f"\nprediction sets: {cal.method} over {cal.folds} folds of the training rows;"
        f" {n[0]} benign and {n[1]} malignant calibration scores"
        f" (highest supported confidence {top[0]:.4f} benign, {top[1]:.4f} malignant)"
    )
    print(
        f"{'confidence':>10}  {'benign cov.':>11}  {'malig. cov.':>11}"
        f"  {'one class':>9}  {'both':>6}  {'empty':>6}   (validation rows)"
    )
    for confidence in REPORT_CONFIDENCES:
        s = art.validation_sets(confidence)
        print(
            f"{confidence:>10g}  {s.coverage[0]:>11.4f}  {s.coverage[1]:>11.4f}"
            f"  {s.singleton:>9.3f}  {s.both:>6.3f}  {s.empty:>6.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.promote:
        return promote(args.out, DEFAULT_ARTIFACT_PATH)
    data = load_dataset_or_report("train.py", args.data)
    if data is None:
        return 2
    # Import the optional libraries before training, not after it: a missing one is one line now.
    try:
        write_plots = None if args.no_plots else _plot_writer()
    except ImportError as exc:
        print(
            f"train.py: error: the plots need {exc.name or 'matplotlib'} (the train extra: "
            "pip install -e '.[train]', or make train); or pass --no-plots",
            file=sys.stderr,
        )
        return 2
    previous = _content_sha256(args.out)
    print(f"{args.data}: {data.n_rows_read} rows, {data.n_dropped_missing} with '?' dropped")
    settings = TrainingSettings(
        split=args.split, lr=args.lr, iterations=args.iterations, hidden=args.hidden, seed=args.seed
    )
    progress, on_fold = (None, None) if args.quiet else _progress(settings.iterations)
    result = train(
        data,
        settings,
        default_threshold=args.threshold,
        progress=progress,
        calibration_folds=args.calibration_folds,
        on_fold=on_fold,
    )
    print_report(result)
    if write_plots is not None:
        for path in write_plots(result, args.plots):
            print(f"wrote {path}")
    try:
        result.artifact.save(args.out)
    except (OSError, ArtifactError) as exc:
        print(f"train.py: error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (model version {result.artifact.model_version})")
    if args.out.resolve() == DEFAULT_ARTIFACT_PATH.resolve():
        print(_replaced(DEFAULT_ARTIFACT_PATH, previous, result.artifact.content_sha256))
    else:
        hint = _promote_hint(args.out)
        print(f"{DEFAULT_ARTIFACT_PATH.name} is unchanged; to serve this model: {hint}")
    return 0


def _progress(
    iterations: int,
) -> tuple[Callable[[int, float], None], Callable[[int, int], None]]:
    """The training and calibration progress callbacks: tqdm's bar and a rewritten line on a
    terminal, whole lines elsewhere (see scripts/progress.py)."""
    bar = _bar(iterations) if on_terminal(sys.stderr) else None
    lines = ProgressLines(sys.stderr)
    start = time.monotonic()

    def progress(i: int, loss: float) -> None:
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
            bar.update(i + 1 - bar.n)
        else:
            elapsed = time.monotonic() - start
            lines.report(
                "training: iteration", i + 1, iterations, f"loss={loss:.6f}  {elapsed:.1f} s"
            )

    def on_fold(done: int, folds: int) -> None:
        if bar is not None and done == 1:
            bar.n = iterations
            bar.close()
        rewrite = on_terminal(sys.stdout) and done < folds
        print(f"calibration network {done}/{folds} trained", end="\r" if rewrite else "\n")

    return progress, on_fold


def _bar(iterations: int) -> Any:
    """tqdm's bar, or None without tqdm (the train extra): whole lines then, as off a terminal."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=iterations, unit="it")


def promote(candidate: Path, served: Path) -> int:
    """Replace `served` with the exact bytes of `candidate`, once they load as an artifact."""
    try:
        raw = read_artifact_bytes(candidate)
        new = parse_artifact(raw, str(candidate)).content_sha256
    except ArtifactError as exc:
        print(f"train.py: error: --promote: {exc}", file=sys.stderr)
        return 1
    old = _content_sha256(served)
    try:
        _write_atomically(served, raw)
    except OSError as exc:
        print(f"train.py: error: --promote: cannot write {served}: {exc}", file=sys.stderr)
        return 1
    print(f"promoted {candidate}")
    print(_replaced(served, old, new))
    return 0


def _write_atomically(path: Path, raw: bytes) -> None:
    """A temporary file in the same folder, then renamed over `path`: never half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plot_writer() -> Callable[[TrainingResult, Path], list[Path]]:
    from scripts.plots import write_plots  # imports matplotlib

    return write_plots


def _content_sha256(path: Path) -> str | None:
    """The content hash of the artifact at `path` before this run replaces it, if any."""
    try:
        return load_artifact(path).content_sha256 if path.is_file() else None
    except ArtifactError:
        return "unreadable"


def _replaced(served: Path, previous: str | None, new: str) -> str:
    """Said loudly: this is the artifact the service serves (and git tracks)."""
    change = "unchanged" if previous == new else f"was {previous or 'absent'}"
    return (
        f"NOTE: replaced {served}, the artifact the service serves: content_sha256 {new} "
        f"({change}); the next start of the service serves it; "
        f"`git checkout -- {served}` restores the committed one."
    )


def _promote_hint(out: Path) -> str:
    default = out.resolve() == CANDIDATE_PATH.resolve()
    return "make promote" if default else f"python scripts/train.py --promote --out {out}"


if __name__ == "__main__":
    sys.exit(main())
