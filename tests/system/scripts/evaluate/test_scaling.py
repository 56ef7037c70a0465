"""scripts/evaluate/scaling.py: Platt and temperature scaling, beside the served fits."""

import numpy as np
import pytest

from model.data import Dataset
from scripts.evaluate.carved import carved
from scripts.evaluate.cv import stratified_splits, validate
from scripts.evaluate.scaling import platt, scaling_verdict, temperature
from scripts.evaluate.tables import frame
from tests.system.scripts.evaluate import FAST


@pytest.mark.parametrize("sharpen", [0.5, 3.0])
def test_platt_and_temperature_undo_a_known_distortion(sharpen: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(np.int64)
    distorted = 1 / (1 + np.exp(-sharpen * z))  # over- or under-confident
    truth = 1 / (1 + np.exp(-z))
    for fit in (platt, temperature):
        fixed = fit(distorted, y)(distorted)
        assert np.max(np.abs(fixed - truth)) < 0.03, fit.__name__
        assert np.all(np.diff(fixed[np.argsort(distorted)]) >= -1e-12)  # monotone: AUC kept


def test_scaling_part_compares_against_the_served_fits(dataset: Dataset) -> None:
    splits = stratified_splits(dataset.y, 3, 1, 0)
    _, served = validate("cv", dataset, splits, FAST, [0.2], baselines=False)
    df = frame(carved(dataset, splits, FAST, 0.2, 0.25, (0.9,), served, conformal=False))
    assert set(df.variant) == {
        "none (whole training fold)",
        "fewer training rows, unscaled",
        "Platt",
        "temperature",
    }
    auc = df[(df.scope == "fold") & (df.metric == "roc_auc")].pivot_table(
        index="fold", columns="variant", values="value"
    )
    # a monotone rescaling of the same probabilities ranks rows the same
    np.testing.assert_allclose(auc["temperature"], auc["fewer training rows, unscaled"])
    verdict = scaling_verdict(df)
    assert verdict.count("adopt") == 2
