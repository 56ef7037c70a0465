"""scripts/evaluate/tables.py: the corrected repeated-CV t-test, its table and the noise
sentence, the frame's CSV round trip."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import stats

from model.data import Dataset
from scripts.evaluate.common import Split
from scripts.evaluate.cv import stratified_splits, validate
from scripts.evaluate.tables import (
    corrected_ttest,
    frame,
    held_out_ratio,
    noise_sentence,
    read_frame,
    ttest_table,
)
from tests.system.scripts.evaluate import FAST, MODELS


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25])
def test_corrected_ttest_is_the_nadeau_bengio_statistic(ratio: float) -> None:
    diffs = np.random.default_rng(3).normal(0.004, 0.01, size=50)
    mean, p = corrected_ttest(diffs, ratio)
    assert mean == pytest.approx(diffs.mean(), abs=1e-15)
    t = diffs.mean() / math.sqrt((1 / 50 + ratio) * diffs.var(ddof=1))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df=49), rel=1e-12)
    plain = stats.ttest_1samp(diffs, 0.0).pvalue
    if ratio == 0.0:  # without the correction it is the ordinary one-sample t-test
        assert p == pytest.approx(plain, rel=1e-10)
    else:  # the correction widens the variance: larger p for the same differences
        assert p > plain


@pytest.mark.parametrize(
    ("diffs", "expected"),
    [([0.0, 0.0, 0.0], (0.0, 1.0)), ([0.01, 0.01], (0.01, 0.0)), ([0.02], (0.02, math.nan))],
)
def test_corrected_ttest_edge_cases(diffs: list[float], expected: tuple[float, float]) -> None:
    mean, p = corrected_ttest(diffs, 0.1)
    assert mean == pytest.approx(expected[0])
    assert (math.isnan(p) and math.isnan(expected[1])) or p == expected[1]


def test_ttest_table_pairs_folds_and_names_the_noise(
    cv3: tuple[list[Split], pd.DataFrame, list[NDArray[np.float64]]],
) -> None:
    splits, df, _ = cv3
    ref = ("TwoLayerNet", "P > 0.5", "")
    ratio = held_out_ratio(splits)
    assert ratio == pytest.approx(0.5, abs=0.01)
    table = ttest_table(df, "cv", ref, ratio)
    assert list(table.model) == ["TwoLayerNet", *MODELS[1:]]  # the net at 0.3 too
    assert list(table.rule[:1]) == ["P > 0.3"]
    fold = df[(df.scope == "fold") & (df.metric == "accuracy")]
    net = fold[(fold.model == "TwoLayerNet") & (fold.rule == "P > 0.5")].value.to_numpy()
    knn = fold[fold.model == "kNN (k = 5)"].value.to_numpy()
    mean, p = corrected_ttest(knn - net, ratio)
    assert table.set_index("model").loc["kNN (k = 5)", "accuracy"] == f"{mean:+.4f} (p {p:.2f})"
    sentence = noise_sentence(df, "cv", ref, ratio)
    assert sentence.endswith("noise.") or "noise (corrected p > 0.05)" in sentence


def test_frame_round_trips_through_csv(tmp_path: Path, dataset: Dataset) -> None:
    splits = stratified_splits(dataset.y, 3, 1, 0)
    df = frame(validate("cv", dataset, splits, FAST, [0.2], baselines=False)[0])
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    back = read_frame(path)
    assert back is not None
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert read_frame(tmp_path / "bad.csv") is None
