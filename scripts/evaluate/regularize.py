"""The regularize part: weight decay and early stopping, chosen by an inner CV in each outer
training fold (nested)."""

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from model.calibration import log_loss
from model.data import Dataset
from scripts.evaluate.common import (
    CALIBRATION,
    DEFAULT_CV_SEED,
    METRICS,
    NET,
    Indices,
    NetConfig,
    Progress,
    Record,
    Scored,
    Scores,
    Split,
    fit_scaler,
    net_scores,
)
from scripts.evaluate.records import Collector, Key, fold_records
from scripts.evaluate.tables import Run, markdown, summary, ttest_table

if TYPE_CHECKING:
    import pandas as pd


DEFAULT_WD_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2)


def candidates(config: NetConfig, wd_grid: Sequence[float]) -> list[NetConfig]:
    """What the nested choice picks between: the served configuration first (its fits may be
    reused), each non-zero weight decay, then early stopping."""
    out = [config, *(replace(config, weight_decay=w) for w in wd_grid if w)]
    out.append(replace(config, early_stopping=True))
    return out


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


def chosen_on_all_rows(
    data: Dataset, candidates: Sequence[NetConfig], inner_folds: int, seed: int
) -> Record:
    """The candidate the same inner CV picks on every row: what a retrained artifact would use."""
    everything = np.arange(len(data.y), dtype=np.int64)
    pick = choose(data, everything, candidates, inner_folds, seed)
    key = Key("regularize", NET, "", candidates[pick].variant)
    return {**key.__dict__, "repeat": -1} | {
        "fold": -1,
        "scope": "all rows",
        "metric": "chosen",
        "value": 1.0,
    }


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
