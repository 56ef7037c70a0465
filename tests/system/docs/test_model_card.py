"""The model card's prose figures agree with the evaluation they summarise.

Its tables are generated from docs/data/evaluation.csv when the site is built; the sentences
that draw conclusions from them are written by hand, so each figure they quote is computed here
from the same CSV (or, for the share of twins, from the same folds) at the precision quoted.
A new `make evaluate` run that moves one of them fails here until the sentence is updated.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from model.data import Dataset
from scripts.evaluate.common import DEFAULT_CV_SEED, DEFAULT_FOLDS, DEFAULT_REPEATS, NET
from scripts.evaluate.cv import stratified_splits
from scripts.evaluate.grouped import twin_share
from scripts.evaluate.scaling import scaling_verdict
from scripts.evaluate.tables import read_frame

if TYPE_CHECKING:
    import pandas as pd

REPO: Final = Path(__file__).resolve().parents[3]
CARD: Final = REPO / "docs" / "model-card.md"
EVALUATION_CSV: Final = REPO / "docs" / "data" / "evaluation.csv"


@pytest.fixture(scope="module")
def card() -> str:
    """The page's text with its line breaks and indents folded into single spaces."""
    return " ".join(CARD.read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def frame() -> "pd.DataFrame":
    df = read_frame(EVALUATION_CSV)
    assert df is not None, f"{EVALUATION_CSV} is not a results CSV of scripts.evaluate"
    return df


def cv_mean(df: "pd.DataFrame", model: str, rule: str, scope: str, metric: str) -> float:
    """A cv-part figure as the table shows it: the mean over folds, or over repeats if pooled."""
    rows = df[
        (df.part == "cv")
        & (df.model == model)
        & (df.rule == rule)
        & (df.scope == scope)
        & (df.metric == metric)
    ]
    assert len(rows) > 0, (model, rule, scope, metric)
    return float(rows.value.mean())


# (the sentence, with the quoted figure as a group; that figure computed from the frame)
QUOTED: Final[list[tuple[str, Callable[["pd.DataFrame"], str]]]] = [
    (
        r"The network's ECE is about ([\d.]+);",
        lambda df: f"{cv_mean(df, NET, 'P > 0.2', 'pooled', 'ece'):.2f}",
    ),
    (
        r"At 0\.5 the network misses about (\d+)% of malignancies",
        lambda df: f"{1 - cv_mean(df, NET, 'P > 0.5', 'fold', 'sensitivity'):.0%}".rstrip("%"),
    ),
    (
        r"at 0\.2 sensitivity is near ([\d.]+) for",
        lambda df: f"{cv_mean(df, NET, 'P > 0.2', 'fold', 'sensitivity'):.2f}",
    ),
    (
        r"for about ([\d.]+)% false alarms",
        lambda df: f"{100 * (1 - cv_mean(df, NET, 'P > 0.2', 'fold', 'specificity')):.1f}",
    ),
]


@pytest.mark.parametrize(
    ("sentence", "figure"),
    QUOTED,
    ids=["ece", "missed at 0.5", "sensitivity at 0.2", "false alarms at 0.2"],
)
def test_quoted_figures_are_the_csvs(
    card: str, frame: "pd.DataFrame", sentence: str, figure: Callable[["pd.DataFrame"], str]
) -> None:
    found = re.search(sentence, card)
    assert found is not None, f"the model card no longer says {sentence!r}"
    assert found.group(1) == figure(frame)


def test_the_share_of_twins_is_that_of_the_folds(card: str, dataset: Dataset) -> None:
    found = re.search(r"About (\d+)% of held-out rows have an identical twin", card)
    assert found is not None
    splits = stratified_splits(dataset.y, DEFAULT_FOLDS, DEFAULT_REPEATS, DEFAULT_CV_SEED)
    assert f"{twin_share(dataset, splits):.0%}" == f"{found.group(1)}%"


def test_the_best_and_worst_calibrated_are_those_named(card: str, frame: "pd.DataFrame") -> None:
    assert "the SVC, behind a Platt sigmoid, is the best calibrated" in card
    assert "kNN's log loss is the worst by far" in card
    pooled = frame[(frame.part == "cv") & (frame.scope == "pooled")]
    served = pooled[(pooled.model != NET) | (pooled.rule == "P > 0.2")]
    means = served.groupby(["model", "metric"])["value"].mean()
    assert means.xs("ece", level="metric").idxmin() == "SVC (RBF)"
    log_loss = means.xs("log_loss", level="metric").sort_values()
    assert log_loss.index[-1] == "kNN (k = 5)"
    assert log_loss.iloc[-1] > 2 * log_loss.iloc[-2]  # "by far"


def test_post_hoc_scaling_is_not_adopted_as_the_card_says(card: str, frame: "pd.DataFrame") -> None:
    assert "**Post-hoc scaling: not adopted.**" in card
    verdict = scaling_verdict(frame)
    assert verdict.count("do not adopt") == 2, verdict
