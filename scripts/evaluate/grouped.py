"""The grouped part: folds that keep every copy of a score vector together, so no held-out row
has a twin in training."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from model.data import Dataset
from scripts.evaluate.common import Indices, Split
from scripts.evaluate.cv import cv_section
from scripts.evaluate.tables import Run

if TYPE_CHECKING:
    import pandas as pd


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


def twin_share(data: Dataset, splits: Sequence[Split]) -> float:
    """Mean share of held-out rows whose exact score vector also occurs in the training rows."""
    groups = duplicate_groups(data.X)
    return float(np.mean([np.isin(groups[s.test], groups[s.train]).mean() for s in splits]))


def report_grouped(df: "pd.DataFrame", run: Run) -> str:
    distinct = len(np.unique(run.data.X, axis=0))
    intro = (
        f"Grouped: the same {run.folds} x {run.repeats} scheme with StratifiedGroupKFold, each of "
        f"the {distinct} distinct score vectors (of {len(run.data.y)} rows) in one fold only, so "
        f"no held-out row has a twin in training ({run.grouped_twins:.0%})."
    )
    return "### Grouped cross-validation\n\n" + intro + "\n\n" + cv_section(df, run, "grouped")
