"""The cv part: repeated stratified K-fold of the network beside its peers, and the validation
loop the grouped and temporal parts share."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

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
from scripts.evaluate.peers import baseline_scores, make_baselines
from scripts.evaluate.records import Collector, Key
from scripts.evaluate.tables import (
    Run,
    label_models,
    markdown,
    noise_sentence,
    summary,
    ttest_table,
)

if TYPE_CHECKING:
    import pandas as pd


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
