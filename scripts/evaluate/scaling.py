"""The scaling part: Platt and temperature scaling of the network, fitted on the calibration rows
set aside from each training fold (scripts/evaluate/carved.py)."""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from scripts.evaluate.common import CALIBRATION, Scores
from scripts.evaluate.tables import Run, markdown, summary

if TYPE_CHECKING:
    import pandas as pd


def logit(p: Scores) -> Scores:
    q = np.clip(p, 1e-15, 1.0 - 1e-15)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def platt(calib_p: Scores, calib_y: NDArray[np.int64]) -> Callable[[Scores], Scores]:
    """sigmoid(a z + b) on the logit z, (a, b) by maximum likelihood on the calibration rows
    (Platt's method without his target smoothing)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=np.inf).fit(logit(calib_p)[:, None], calib_y)
    return lambda p: np.asarray(lr.predict_proba(logit(p)[:, None])[:, 1], dtype=np.float64)


def temperature(calib_p: Scores, calib_y: NDArray[np.int64]) -> Callable[[Scores], Scores]:
    """sigmoid(z / T), T > 0 by maximum likelihood on the calibration rows."""
    from scipy.optimize import minimize_scalar

    z, y = logit(calib_p), calib_y.astype(np.float64)

    def nll(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, s) - y * s))

    T = math.exp(minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded").x)
    return lambda p: 1.0 / (1.0 + np.exp(-logit(p) / T))


def scaling_variants(
    calib_p: Scores, calib_y: NDArray[np.int64], test_p: Scores, served: Scores | None
) -> dict[str, Scores]:
    """The network's test probabilities under each scaling fitted on the calibration rows,
    after the served model's (fitted on the whole training fold) when the cv part ran."""
    variants = {
        "fewer training rows, unscaled": test_p,
        "Platt": platt(calib_p, calib_y)(test_p),
        "temperature": temperature(calib_p, calib_y)(test_p),
    }
    if served is not None:
        variants = {"none (whole training fold)": served, **variants}
    return variants


def scaling_verdict(df: "pd.DataFrame") -> str:
    rows = df[(df.part == "scaling") & (df.scope == "pooled")]
    means = rows.groupby(["variant", "metric"])["value"].mean()
    folds = df[(df.part == "scaling") & (df.scope == "fold") & (df.metric == "roc_auc")]
    auc = folds.groupby("variant")["value"].mean()
    base = "none (whole training fold)"
    if base not in auc:
        return "Without the cv part's fits there is no served baseline to compare with."
    lines: list[str] = []
    for v in ("Platt", "temperature"):
        better = (
            means[(v, "ece")] < means[(base, "ece")]
            and means[(v, "brier")] < means[(base, "brier")]
        )
        keeps_auc = auc[v] >= auc[base]
        verdict = "adopt" if better and keeps_auc else "do not adopt"
        lines.append(
            f"{v}: ECE {means[(v, 'ece')]:.4f} vs {means[(base, 'ece')]:.4f}, Brier "
            f"{means[(v, 'brier')]:.4f} vs {means[(base, 'brier')]:.4f}, ROC AUC {auc[v]:.4f} "
            f"vs {auc[base]:.4f}: {verdict}."
        )
    return " ".join(lines)


def report_scaling(df: "pd.DataFrame", run: Run) -> str:
    calib = summary(df, "scaling", "pooled", CALIBRATION)
    auc = summary(df, "scaling", "fold", ("roc_auc", "brier"))
    table = calib.merge(auc.drop(columns="Brier"), on=["model", "rule", "variant"])
    table = table.drop(columns=["model", "rule"]).rename(columns={"variant": "post-hoc scaling"})
    intro = (
        "Post-hoc scaling of the network, fitted on the conformal part's calibration rows and "
        "judged on the held-out folds (nested: nothing of the held-out fold is seen). Brier, "
        "log loss and ECE pooled per repeat; ROC AUC per fold. The rule: adopt a scaling only "
        "if it lowers both ECE and Brier without lowering ROC AUC, against the served model "
        "trained on the whole training fold."
    )
    return "\n\n".join(["### Post-hoc scaling", intro, markdown(table), scaling_verdict(df)])
