"""The batch scorer (the batch routes' path): its equations chunk by chunk, and its accuracy
against `predict_proba` and the exact values."""

import numpy as np
import pytest
from numpy.typing import NDArray

from model.artifact import Artifact
from model.data import Dataset
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler
from model.scoring.batch import CHUNK_ROWS, BatchScorer


@pytest.fixture(scope="module")
def scorer(artifact: Artifact) -> BatchScorer:
    return BatchScorer(artifact.network, artifact.scaler)


def chunk_by_chunk(artifact: Artifact, rows: NDArray[np.number]) -> NDArray[np.float64]:
    """What the scorer must equal bit for bit: the module's equations, with the scaler folded
    into the first layer, on each CHUNK_ROWS rows in turn, as NumPy writes them."""
    net, scaler = artifact.network, artifact.scaler
    assert scaler.min_ is not None  # a loaded artifact's scaler is fitted
    assert scaler.scale_ is not None
    V = net.W1_ / scaler.scale_
    VT, c = np.ascontiguousarray(V.T), net.b1_ - V @ scaler.min_
    logits = [
        np.maximum(rows[i : i + CHUNK_ROWS].astype(np.float64) @ VT + c, 0.0) @ net.W2_[0]
        + net.b2_[0]
        for i in range(0, len(rows), CHUNK_ROWS)
    ]
    z: NDArray[np.float64] = np.concatenate(logits)
    return 1 / (1 + np.exp(-z))


def exact(artifact: Artifact, rows: NDArray[np.integer]) -> NDArray[np.longdouble]:
    """P(malignant) through predict_proba's own steps (scale, then the forward pass) in long
    double: 64 bits of mantissa on x86, against float64's 53."""
    net, scaler, L = artifact.network, artifact.scaler, np.longdouble
    assert scaler.min_ is not None  # a loaded artifact's scaler is fitted
    assert scaler.scale_ is not None
    x = (rows.astype(L) - scaler.min_.astype(L)) / scaler.scale_.astype(L)
    Z1 = x @ net.W1_.T.astype(L) + net.b1_.astype(L)
    z2: NDArray[np.longdouble] = np.maximum(Z1, L(0)) @ net.W2_[0].astype(L) + L(net.b2_[0])
    return L(1) / (L(1) + np.exp(-z2))


@pytest.mark.parametrize("n", [1, 2, 9, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, 5000])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.float64])
def test_random_rows_score_as_the_folded_equations_bit_for_bit(
    scorer: BatchScorer, artifact: Artifact, n: int, dtype: type[np.number]
) -> None:
    rows = np.random.default_rng(n).integers(1, 11, size=(n, 9)).astype(dtype)
    ours = scorer.probabilities(rows)
    assert ours.dtype == np.float64
    assert ours.shape == (n,)
    np.testing.assert_array_equal(ours, chunk_by_chunk(artifact, rows))
    # predict_proba scales first and takes exp(-logaddexp(0, -z)): the last bits, as for the
    # single-row scorer
    np.testing.assert_allclose(ours, artifact.predict_proba(rows), rtol=1e-12, atol=1e-15)


def test_every_row_of_the_data_set_scores_as_the_folded_equations(
    scorer: BatchScorer, artifact: Artifact, dataset: Dataset
) -> None:
    np.testing.assert_array_equal(
        scorer.probabilities(dataset.X), chunk_by_chunk(artifact, dataset.X)
    )


def test_folding_the_scaler_in_costs_no_accuracy(
    scorer: BatchScorer, artifact: Artifact, dataset: Dataset
) -> None:
    """Against the exact probabilities, the scorer errs no more than predict_proba does (on a
    million rows: 4.7e-16 at most, against 4.8e-16), and both stay within 1e-15."""
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.fail("this platform's long double is no wider than float64: no exact reference")
    rows = np.concatenate(
        [dataset.X, np.random.default_rng(7).integers(1, 11, size=(100_000, 9))]
    ).astype(np.uint8)
    truth = exact(artifact, rows)
    ours = np.abs(scorer.probabilities(rows) - truth).max()
    reference = np.abs(artifact.predict_proba(rows) - truth).max()
    assert ours < 1e-15
    assert reference < 1e-15
    assert ours <= reference + 2.3e-16  # one rounding of a probability below 1 at most


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
