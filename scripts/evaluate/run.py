"""Running the chosen parts into one tidy frame, and the report's sections in part order."""

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from model.data import Dataset
from scripts.evaluate.carved import carved
from scripts.evaluate.common import PARTS, NetConfig, Progress, Record, Scores, Split
from scripts.evaluate.conformal import CONFIDENCES, report_conformal
from scripts.evaluate.cv import report_cv, stratified_splits, validate
from scripts.evaluate.grouped import grouped_splits, report_grouped, twin_share
from scripts.evaluate.regularize import (
    candidates,
    chosen_on_all_rows,
    regularize,
    report_regularize,
)
from scripts.evaluate.scaling import report_scaling
from scripts.evaluate.tables import Run, held_out_ratio
from scripts.evaluate.temporal import report_temporal, temporal_splits

if TYPE_CHECKING:
    import pandas as pd


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
        cv_ratio=held_out_ratio(splits), grouped_ratio=held_out_ratio(grouped),
        cv_twins=twin_share(data, splits), grouped_twins=twin_share(data, grouped),
    )  # fmt: skip


def served_fits(
    data: Dataset, args: argparse.Namespace, splits: Sequence[Split], progress: Progress
) -> tuple[list[Record], list[Scores] | None]:
    """The cv part's fits: its records if cv was asked for, and the network's test probabilities
    per split, which the scaling and regularize parts compare with as the served model."""
    parts = set(args.parts)
    if not parts & {"cv", "scaling", "regularize"}:
        return [], None
    thresholds = [args.threshold, *sorted({t for t in args.sweep if t != args.threshold})]
    peers = "cv" in parts and not args.no_baselines
    records, served = validate(
        "cv", data, splits, net_config(args), thresholds, peers, args.cv_seed, progress
    )
    return (records if "cv" in parts else []), served


def validated(
    part: str, data: Dataset, splits: Sequence[Split], args: argparse.Namespace, progress: Progress
) -> list[Record]:
    """The grouped or temporal part: the cv part's validation on other splits, served rule only."""
    config, peers = net_config(args), not args.no_baselines
    return validate(part, data, splits, config, [args.threshold], peers, args.cv_seed, progress)[0]


def regularized(
    data: Dataset,
    args: argparse.Namespace,
    splits: Sequence[Split],
    served: Sequence[Scores] | None,
    progress: Progress,
) -> list[Record]:
    """The regularize part on the first --nested-repeats repeats, and the all-rows choice."""
    tried = candidates(net_config(args), args.wd_grid)
    outer = splits[: args.folds * args.nested_repeats]
    seed = args.cv_seed
    records = regularize(
        data, outer, tried, args.threshold, args.inner_folds, served, seed, progress
    )
    return [*records, chosen_on_all_rows(data, tried, args.inner_folds, seed)]


def run_parts(data: Dataset, args: argparse.Namespace, progress: Progress) -> list[Record]:
    parts = set(args.parts)
    splits = stratified_splits(data.y, args.folds, args.repeats, args.cv_seed)
    records, served = served_fits(data, args, splits, progress)
    if "grouped" in parts:
        grouped = grouped_splits(data, args.folds, args.repeats, args.cv_seed)
        records += validated("grouped", data, grouped, args, progress)
    if "temporal" in parts:
        records += validated("temporal", data, temporal_splits(data), args, progress)
    if parts & {"conformal", "scaling"}:
        records += carved(
            data, splits, net_config(args), args.threshold, args.calibration_fraction,
            CONFIDENCES, served, "conformal" in parts, "scaling" in parts, args.cv_seed, progress,
        )  # fmt: skip
    if "regularize" in parts:
        records += regularized(data, args, splits, served, progress)
    return records
