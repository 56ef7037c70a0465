"""The conformal part: split-conformal sets of the network and logistic regression, calibrated
on rows carved from each training fold."""

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import NDArray

from model.conformal import ConformalClassifier
from scripts.evaluate.common import Record, Scores, Split
from scripts.evaluate.records import Key, fold_records
from scripts.evaluate.tables import Run, markdown

if TYPE_CHECKING:
    import pandas as pd


CONFIDENCES: tuple[float, ...] = (0.9, 0.95, 0.99)


def set_shares(members: NDArray[np.bool_], y: NDArray[np.int64]) -> dict[str, float]:
    size = members.sum(axis=1)
    covered = members[np.arange(len(y)), y]
    return {
        "coverage_benign": float(covered[y == 0].mean()),
        "coverage_malignant": float(covered[y == 1].mean()),
        "coverage_all": float(covered.mean()),
        "singleton": float(np.mean(size == 1)),
        "two_class": float(np.mean(size == 2)),
        "empty": float(np.mean(size == 0)),
    }


def set_values(
    sets: ConformalClassifier, proba: Scores, y: NDArray[np.int64], confidence: float
) -> dict[str, float]:
    """The shares of one fold's sets at a confidence, and whether a class is always in them."""
    values = set_shares(sets.predict_set(proba, confidence), y)
    q = sets.quantiles(confidence)
    values["always_benign"] = float(np.isinf(q[0]))
    values["always_malignant"] = float(np.isinf(q[1]))
    return values


def conformal_records(
    split: Split,
    models: dict[str, tuple[Scores, Scores]],
    calib_y: NDArray[np.int64],
    test_y: NDArray[np.int64],
    confidences: Sequence[float],
) -> list[Record]:
    """One fold's sets of each model (its calibration and test probabilities), class-conditional
    and marginal, at each confidence."""
    records: list[Record] = []
    for name, (pc, pt) in models.items():
        for mondrian in (True, False):
            sets = ConformalClassifier(mondrian=mondrian).fit(pc, calib_y)
            kind = "class-conditional" if mondrian else "marginal"
            for c in confidences:
                key = Key("conformal", name, "", kind, c)
                records += fold_records(key, split, set_values(sets, pt, test_y, c))
    return records


def coverage_holds(values: "pd.Series", target: float) -> bool:
    """Mean coverage at least target - 3 standard errors (sd over folds / sqrt(folds))."""
    se = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return bool(values.mean() >= target - 3.0 * se)


def report_conformal(df: "pd.DataFrame", run: Run) -> str:
    rows = df[df.part == "conformal"]
    shown = ["coverage_benign", "coverage_malignant", "coverage_all", "singleton", "two_class"]
    shown += ["empty"]
    out: list[dict[str, str]] = []
    for key, g in rows.groupby(["model", "variant", "confidence"], sort=False):
        model, variant, conf = cast("tuple[str, str, float]", key)
        values = {m: g[g.metric == m]["value"] for m in (*shown, "always_malignant")}
        checked = ["coverage_benign", "coverage_malignant"]
        if variant == "marginal":
            checked = ["coverage_all"]
        holds = all(coverage_holds(values[m], conf) for m in checked)
        row = {"model": model, "calibration": variant, "confidence": f"{conf:g}"}
        row |= {
            m.replace("_", " "): f"{values[m].mean():.3f} ± {values[m].std():.3f}" for m in shown
        }
        row["holds (3 SE)"] = "yes" if holds else "**no**"
        row["malignant always in set"] = f"{values['always_malignant'].mean():.0%}"
        out.append(row)
    import pandas as pd

    table = pd.DataFrame(out)
    intro = (
        f"Split-conformal prediction sets on the same {run.folds} x {run.repeats} folds: in each "
        f"training fold a stratified {run.calibration_fraction:g} of the rows is set aside for "
        "calibration (never the held-out fold), the model is fitted on the rest, and the sets "
        "are scored on the held-out fold. Per-class coverage, overall coverage and the shares "
        "of one-class, two-class and empty sets, mean ± sd over folds; 'holds' checks that mean "
        "coverage is at least the target minus three standard errors (per class for "
        "class-conditional sets, overall for marginal ones, which promise only that). "
        "'Malignant always in set': folds whose malignant calibration rows are too few for the "
        "confidence (n / (n + 1) below it), so malignant is in every set."
    )
    return "### Conformal coverage\n\n" + intro + "\n\n" + markdown(table)
