"""scripts/evaluate/conformal.py: class-conditional coverage and the shares of each set size."""

import math
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from model.conformal import ConformalClassifier
from model.data import Dataset
from scripts.evaluate.carved import carved
from scripts.evaluate.conformal import coverage_holds, report_conformal
from scripts.evaluate.cv import stratified_splits
from scripts.evaluate.tables import Run, frame
from tests.system.scripts.evaluate import FAST


def test_conformal_part_covers_each_class_and_shares_add_up(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = stratified_splits(dataset.y, 5, 1, 0)
    fitted: list[NDArray[Any]] = []
    fit = ConformalClassifier.fit

    def spy(self: Any, proba: Any, y: Any) -> Any:
        fitted.append(np.asarray(y))
        return fit(self, proba, y)

    monkeypatch.setattr(ConformalClassifier, "fit", spy)
    records = carved(dataset, splits, FAST, 0.2, 0.25, (0.9, 0.95), None, scaling=False)
    df = frame(records)
    assert len(fitted) == 5 * 2 * 2  # folds x models x (class-conditional, marginal)
    assert all(len(y) == math.ceil(0.25 * len(splits[0].train)) for y in fitted)
    wide = df.pivot_table(
        index=["model", "variant", "confidence", "fold"], columns="metric", values="value"
    )
    np.testing.assert_allclose(wide["singleton"] + wide["two_class"] + wide["empty"], 1.0)
    assert set(wide.index.get_level_values("model")) == {"TwoLayerNet", "LogisticRegression"}
    text = report_conformal(df, Run(dataset, FAST, 0.2, 5, 1, 0))
    for conf in ("0.9", "0.95"):
        assert f"| class-conditional | {conf}" in text.replace("  ", "").replace("| ", "| ")
    mondrian = wide.xs("class-conditional", level="variant")
    for key, g in mondrian.groupby(level=["model", "confidence"]):
        _, confidence = cast("tuple[str, float]", key)
        for cls in ("coverage_benign", "coverage_malignant"):
            assert coverage_holds(g[cls], confidence), (confidence, cls)


def test_coverage_check_uses_three_standard_errors() -> None:
    values = pd.Series([0.90, 0.92, 0.94, 0.96])  # mean 0.93, se 0.01291
    assert coverage_holds(values, 0.95 - 0.0001)  # within 3 SE below
    assert not coverage_holds(values, 0.975)  # more than 3 SE below
