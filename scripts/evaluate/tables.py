"""The tidy frame, its CSV, the report's settings, and the Markdown tables and corrected t-tests
the report sections build from the frame."""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike

from model.data import Dataset
from scripts.evaluate.common import (
    DEFAULT_CALIBRATION_FRACTION,
    METRICS,
    NET,
    TITLES,
    NetConfig,
    Record,
    Split,
)

if TYPE_CHECKING:
    import pandas as pd


P_NOISE = 0.05  # a difference with a corrected p-value above this is reported as noise


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


def held_out_ratio(splits: Sequence[Split]) -> float:
    """Mean n_test / n_train over the splits: the corrected t-test's variance inflation."""
    return float(np.mean([len(s.test) / len(s.train) for s in splits]))


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
