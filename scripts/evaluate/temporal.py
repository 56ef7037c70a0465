"""The temporal part: the UCI file's eight collection groups in order, each predicted by models
trained on the earlier ones."""

from typing import TYPE_CHECKING, cast

import numpy as np

from model.data import Dataset
from scripts.evaluate.common import CALIBRATION, METRICS, NET, TITLES, Indices, Split
from scripts.evaluate.tables import Run, markdown

if TYPE_CHECKING:
    import pandas as pd


# The UCI description's chronological groups (January 1989 to November 1991), in file order.
TEMPORAL_GROUPS: tuple[int, ...] = (367, 70, 31, 17, 48, 49, 31, 86)


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
