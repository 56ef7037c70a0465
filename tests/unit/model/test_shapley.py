"""Exact Shapley values: against shap's exact explainer, additivity on every row, the axioms.

shap's explainer is given every training row (546, duplicates included) as its background;
ours averages over the distinct rows stored in the artifact, weighted by their counts. Equal
values to 1e-12 show both that the enumeration is right and that the compressed background
loses nothing.
"""

import warnings
from collections.abc import Callable
from itertools import combinations
from math import factorial

import numpy as np
import pytest
from numpy.typing import NDArray

from model.artifact import Artifact
from model.data import Dataset
from model.features import N_FEATURES
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from model.shapley import (
    ShapleyExplainer,
    coalition_masks,
    distinct_rows,
    shapley_weights,
)
from model.splits import make_split

TOLERANCE = 1e-12
# Every 25th row of the data set (28 rows, both classes), and the two docs examples (rows 0, 5).
SHAP_ROWS = sorted({*range(0, 683, 25), 5})

Model = Callable[[NDArray[np.float64]], NDArray[np.float64]]


@pytest.fixture(scope="module")
def training_rows(artifact: Artifact, dataset: Dataset) -> NDArray[np.int64]:
    train_idx, _ = make_split(artifact.training.split, dataset.y, artifact.training.seed)  # type: ignore[arg-type]
    return dataset.X[train_idx]


def probability_of(artifact: Artifact) -> Model:
    return artifact.predict_proba


def log_odds_of(artifact: Artifact) -> Model:
    return lambda X: artifact.network.forward(artifact.scaler.transform(X))[1]


@pytest.fixture(scope="module")
def shap_values(
    artifact: Artifact, dataset: Dataset, training_rows: NDArray[np.int64]
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """shap's exact values and base values for SHAP_ROWS, in probability and in log-odds; one
    explainer per output, built once for the module (its first call compiles for ~20 s)."""
    with warnings.catch_warnings():  # shap's colour maps use a matplotlib call due to go
        warnings.filterwarnings("ignore", "The set_[a-z]+ function", PendingDeprecationWarning)
        import shap  # dev extra; imported here so that collecting the module stays fast

    background = shap.maskers.Independent(
        training_rows.astype(np.float64), max_samples=len(training_rows)
    )
    X = dataset.X[SHAP_ROWS].astype(np.float64)
    out = {}
    for space, model in (("probability", probability_of), ("log_odds", log_odds_of)):
        explanation = shap.explainers.Exact(model(artifact), background)(X)
        out[space] = (np.asarray(explanation.values), np.asarray(explanation.base_values))
    return out


def test_the_artifact_background_is_the_training_rows(
    artifact: Artifact, training_rows: NDArray[np.int64]
) -> None:
    rows, counts = artifact.background_rows, artifact.background_counts
    assert counts.sum() == len(training_rows) == artifact.n_train
    expanded = np.repeat(rows, counts, axis=0)
    order = np.lexsort(training_rows.T[::-1])
    np.testing.assert_array_equal(expanded, training_rows[order])


@pytest.mark.slow
@pytest.mark.parametrize("space", ["probability", "log_odds"])
def test_values_equal_shaps_exact_explainer(
    artifact: Artifact,
    dataset: Dataset,
    shap_values: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    space: str,
) -> None:
    values, base_values = shap_values[space]
    for k, row in enumerate(SHAP_ROWS):
        e = artifact.explain(dataset.X[row])
        ours = e.phi_probability if space == "probability" else e.phi_log_odds
        base = e.base_probability if space == "probability" else e.base_log_odds
        np.testing.assert_allclose(ours, values[k], rtol=0, atol=TOLERANCE, err_msg=f"row {row}")
        assert abs(base - base_values[k]) <= TOLERANCE


def test_log_odds_values_are_not_the_logit_of_the_probability_ones(
    artifact: Artifact, dataset: Dataset
) -> None:
    """Each side is exact for its own output; they are different explanations."""
    e = artifact.explain(dataset.X[0])
    base_logit = np.log(e.base_probability / (1 - e.base_probability))
    assert abs(base_logit - e.base_log_odds) > 0.1


@pytest.mark.slow
def test_base_plus_values_is_the_prediction_on_every_row(
    artifact: Artifact, dataset: Dataset
) -> None:
    probabilities = artifact.predict_proba(dataset.X)
    log_odds = log_odds_of(artifact)(dataset.X.astype(np.float64))
    worst_p = worst_z = 0.0
    for x, p, z in zip(dataset.X, probabilities, log_odds, strict=True):
        e = artifact.explain(x)
        assert e.probability == artifact.predict_one(x.tolist())
        assert abs(e.probability - p) <= TOLERANCE
        assert abs(e.log_odds - z) <= TOLERANCE
        worst_p = max(worst_p, abs(e.base_probability + e.phi_probability.sum() - p))
        worst_z = max(worst_z, abs(e.base_log_odds + e.phi_log_odds.sum() - z))
    assert worst_p <= TOLERANCE
    assert worst_z <= TOLERANCE


def test_base_value_is_the_mean_output_over_the_training_rows(
    artifact: Artifact, training_rows: NDArray[np.int64]
) -> None:
    e = artifact.explain(training_rows[0])
    assert abs(e.base_probability - artifact.predict_proba(training_rows).mean()) <= TOLERANCE
    z = log_odds_of(artifact)(training_rows.astype(np.float64))
    assert abs(e.base_log_odds - z.mean()) <= TOLERANCE


# -- the enumeration, on small hand-made cases ------------------------------------------------
def test_coalitions_are_numbered_by_bit_masks() -> None:
    masks = coalition_masks(3)
    assert masks.tolist() == [
        [False, False, False],
        [True, False, False],
        [False, True, False],
        [True, True, False],
        [False, False, True],
        [True, False, True],
        [False, True, True],
        [True, True, True],
    ]


def test_weights_give_the_shapley_formula_for_three_players() -> None:
    """phi = C v for an arbitrary game v of three players, against the formula written out."""
    v = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]) + np.arange(8) ** 2
    C = shapley_weights(3)

    def value(S: set[int]) -> float:
        return float(v[sum(1 << i for i in S)])

    for i in range(3):
        expected = 0.0
        others = [j for j in range(3) if j != i]
        for S in ({*c} for n in range(3) for c in combinations(others, n)):
            w = factorial(len(S)) * factorial(3 - len(S) - 1) / factorial(3)
            expected += w * (value(S | {i}) - value(S))
        assert C[i] @ v == pytest.approx(expected, rel=1e-15)


def test_weights_add_up_to_full_minus_empty() -> None:
    column_sums = shapley_weights(N_FEATURES).sum(axis=0)
    expected = np.zeros(2**N_FEATURES)
    expected[0], expected[-1] = -1.0, 1.0
    np.testing.assert_allclose(column_sums, expected, rtol=0, atol=1e-15)


def _explainer(W1: NDArray[np.float64], rows: NDArray[np.integer]) -> ShapleyExplainer:
    rng = np.random.default_rng(7)
    net = TwoLayerNet().set_params(
        W1, rng.normal(size=W1.shape[0]), rng.normal(size=(1, W1.shape[0])), [0.3]
    )
    scaler = MinMaxScaler.from_bounds(np.ones(N_FEATURES), np.full(N_FEATURES, 10.0))
    unique, counts = distinct_rows(rows)
    return ShapleyExplainer(net, scaler, unique, counts)


def test_a_feature_the_network_ignores_gets_zero() -> None:
    rng = np.random.default_rng(3)
    W1 = rng.normal(size=(6, N_FEATURES))
    W1[:, 4] = 0.0
    rows = rng.integers(1, 11, size=(40, N_FEATURES))
    e = _explainer(W1, rows).explain(rng.integers(1, 11, size=N_FEATURES))
    # zero up to rounding: phi = C v sums the coalition values with their signs
    assert abs(e.phi_probability[4]) <= 1e-15
    assert abs(e.phi_log_odds[4]) <= 1e-15
    assert np.abs(e.phi_probability).max() > 0.0


def test_a_row_equal_to_the_only_background_row_has_zero_values() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(1, 11, size=N_FEATURES)
    e = _explainer(rng.normal(size=(6, N_FEATURES)), x[np.newaxis]).explain(x)
    np.testing.assert_allclose(e.phi_probability, np.zeros(N_FEATURES), rtol=0, atol=1e-15)
    assert e.base_probability == pytest.approx(e.probability, abs=1e-15)


def test_a_weighted_background_equals_the_repeated_rows(
    artifact: Artifact, dataset: Dataset
) -> None:
    """Counts weigh the mean exactly as repeating each row would: the background in the
    artifact against every training row with count 1."""
    compact = artifact.explainer
    expanded = ShapleyExplainer(
        artifact.network,
        artifact.scaler,
        np.repeat(artifact.background_rows, artifact.background_counts, axis=0),
        np.ones(artifact.n_train),
    )
    for x in dataset.X[:10]:
        a, b = compact.explain(x), expanded.explain(x)
        np.testing.assert_allclose(a.phi_probability, b.phi_probability, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(a.phi_log_odds, b.phi_log_odds, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("rows", "counts", "problem"),
    [
        (np.ones((0, N_FEATURES)), np.ones(0), "non-empty"),
        (np.ones((2, N_FEATURES)), np.ones(3), "n counts"),
        (np.ones((2, N_FEATURES)), np.array([1.0, 0.0]), "positive"),
    ],
    ids=["empty", "count mismatch", "zero count"],
)
def test_a_bad_background_is_refused(
    artifact: Artifact, rows: NDArray[np.float64], counts: NDArray[np.float64], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        ShapleyExplainer(artifact.network, artifact.scaler, rows, counts)
