"""The single-row scorer (/predict's path) against the batch path and NumPy's sigmoid."""

import itertools

import numpy as np
import pytest

from model.artifact import Artifact
from model.data import Dataset
from model.network import TwoLayerNet
from model.network import sigmoid as numpy_sigmoid
from model.scaler import MinMaxScaler
from model.scoring.single_row import SingleRowScorer, sigmoid


@pytest.fixture(scope="module")
def scorer(artifact: Artifact) -> SingleRowScorer:
    return SingleRowScorer(artifact.network, artifact.scaler)


def test_every_row_of_the_data_set_and_the_corners_score_as_the_batch_path(
    scorer: SingleRowScorer, artifact: Artifact, dataset: Dataset
) -> None:
    corners = [list(c) for c in itertools.product((1, 10), repeat=9)]  # 512 rows
    rows = dataset.X.astype(int).tolist() + corners
    scaled = artifact.scaler.transform(np.array(rows, dtype=np.float64))
    logits = artifact.network.forward(scaled)[1]
    ours = np.array([scorer.logit(row) for row in rows])
    np.testing.assert_allclose(ours, logits, rtol=1e-13, atol=1e-13)
    probabilities = [scorer.probability(row) for row in rows]
    np.testing.assert_allclose(probabilities, artifact.predict_proba(rows), rtol=1e-12, atol=1e-15)


def test_random_rows_score_as_the_batch_path(scorer: SingleRowScorer, artifact: Artifact) -> None:
    rows = np.random.default_rng(7).integers(1, 11, size=(5000, 9))
    ours = [scorer.probability(row) for row in rows.tolist()]
    np.testing.assert_allclose(ours, artifact.predict_proba(rows), rtol=1e-12, atol=1e-15)


def test_whole_floats_score_as_their_integers(scorer: SingleRowScorer) -> None:
    row = [5, 1, 1, 1, 2, 1, 3, 1, 1]
    assert scorer.probability([float(s) for s in row]) == scorer.probability(row)


@pytest.mark.parametrize("bad", [0, 11, 5.5, -1, float("nan")])
def test_a_score_off_the_scale_is_refused(scorer: SingleRowScorer, bad: float) -> None:
    with pytest.raises(KeyError):
        scorer.logit([bad] + [1] * 8)


def test_a_row_of_the_wrong_length_is_refused(scorer: SingleRowScorer) -> None:
    with pytest.raises(ValueError, match="zip"):
        scorer.logit([1] * 8)


@pytest.mark.parametrize(
    "z",
    [
        0.0,
        -0.0,
        1e-300,
        -1e-300,
        0.5,
        -0.5,
        3.0,
        -3.0,
        36.8,
        -36.8,
        708.0,
        -708.0,
        745.2,
        -800.0,
        1e308,
        -1e308,
    ],
)
def test_sigmoid_is_numpys_formula(z: float) -> None:
    # Within an ulp, not bit for bit: NumPy may use its own SIMD exp and log1p where libm's
    # serve `math` (on machines with AVX-512).
    np.testing.assert_array_max_ulp(np.array([sigmoid(z)]), numpy_sigmoid(np.array([z])), 1)


def test_sigmoid_is_numpys_over_a_sweep() -> None:
    zs = np.linspace(-50, 50, 20001)
    ours = np.array([sigmoid(z) for z in zs.tolist()])
    np.testing.assert_array_max_ulp(ours, numpy_sigmoid(zs), maxulp=1)
    assert sigmoid(-1e308) == 0.0  # no overflow, no NaN
    assert sigmoid(1e308) == 1.0


def test_an_unfitted_scaler_is_refused(artifact: Artifact) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SingleRowScorer(artifact.network, MinMaxScaler())


def test_a_network_without_weights_is_refused() -> None:
    scaler = MinMaxScaler.from_bounds([1.0] * 9, [10.0] * 9)
    with pytest.raises(AttributeError):
        SingleRowScorer(TwoLayerNet(), scaler)
