"""The batch scorer (the batch routes' path) against `predict_proba`'s steps, chunk by chunk."""

import numpy as np
import pytest
from numpy.typing import NDArray

from model.artifact import Artifact
from model.batch import CHUNK_ROWS, BatchScorer
from model.data import Dataset
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler


@pytest.fixture(scope="module")
def scorer(artifact: Artifact) -> BatchScorer:
    return BatchScorer(artifact.network, artifact.scaler)


def chunk_by_chunk(artifact: Artifact, rows: NDArray[np.integer]) -> NDArray[np.float64]:
    """What the scorer must equal bit for bit: `predict_proba`'s logits on each CHUNK_ROWS rows
    in turn (the scaler, then the forward pass), through 1 / (1 + e^-z) as NumPy writes it."""
    logits = [
        artifact.network.forward(artifact.scaler.transform(rows[i : i + CHUNK_ROWS]))[1]
        for i in range(0, len(rows), CHUNK_ROWS)
    ]
    z = np.concatenate(logits)
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("n", [1, 2, 9, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, 5000])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.float64])
def test_random_rows_score_as_predict_probas_steps_bit_for_bit(
    scorer: BatchScorer, artifact: Artifact, n: int, dtype: type
) -> None:
    rows = np.random.default_rng(n).integers(1, 11, size=(n, 9)).astype(dtype)
    ours = scorer.probabilities(rows)
    assert ours.dtype == np.float64
    assert ours.shape == (n,)
    np.testing.assert_array_equal(ours, chunk_by_chunk(artifact, rows))
    # predict_proba's sigmoid is exp(-logaddexp(0, -z)), and a short last chunk may take
    # another BLAS kernel than one product: the last bits
    np.testing.assert_allclose(ours, artifact.predict_proba(rows), rtol=1e-14, atol=2.3e-16)


def test_every_row_of_the_data_set_scores_as_predict_proba(
    scorer: BatchScorer, artifact: Artifact, dataset: Dataset
) -> None:
    np.testing.assert_array_equal(
        scorer.probabilities(dataset.X), chunk_by_chunk(artifact, dataset.X)
    )


def test_strided_and_fortran_ordered_rows_score_as_contiguous_ones(
    scorer: BatchScorer, dataset: Dataset
) -> None:
    X = dataset.X.astype(np.int64)
    expected = scorer.probabilities(X)
    np.testing.assert_array_equal(scorer.probabilities(np.asfortranarray(X)), expected)
    doubled = np.repeat(X, 2, axis=0)[::2]  # a view with a row stride of two rows
    np.testing.assert_array_equal(scorer.probabilities(doubled), expected)


def test_calls_do_not_share_buffers(scorer: BatchScorer, dataset: Dataset) -> None:
    first = scorer.probabilities(dataset.X[:10])
    kept = first.copy()
    scorer.probabilities(dataset.X[10:20])
    np.testing.assert_array_equal(first, kept)


def test_rows_of_the_wrong_width_are_refused(scorer: BatchScorer) -> None:
    with pytest.raises(ValueError, match="expected 9 feature columns, got 8"):
        scorer.probabilities(np.ones((3, 8), dtype=np.uint8))


@pytest.mark.parametrize(("b2", "expected"), [(-1000.0, 0.0), (1000.0, 1.0), (0.0, 0.5)])
def test_saturated_logits_give_the_limits_without_warnings(b2: float, expected: float) -> None:
    # a network whose logit is b2 for every row; e^1000 overflows, which must stay silent
    # (pytest runs with warnings as errors)
    net = TwoLayerNet(hidden=2)
    net.W1_, net.b1_ = np.zeros((2, 9)), np.zeros(2)
    net.W2_, net.b2_ = np.zeros((1, 2)), np.array([b2])
    net.n_features_in_ = 9
    scaler = MinMaxScaler().fit(np.array([[1.0] * 9, [10.0] * 9]))
    p = BatchScorer(net, scaler).probabilities(np.full((CHUNK_ROWS + 3, 9), 5, dtype=np.uint8))
    np.testing.assert_array_equal(p, np.full(CHUNK_ROWS + 3, expected))
