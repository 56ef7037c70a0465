"""The batch scorer (the batch routes' path) against `predict_proba`, chunk by chunk."""

import numpy as np
import pytest
from numpy.typing import NDArray

from model.artifact import Artifact
from model.batch import CHUNK_ROWS, BatchScorer
from model.data import Dataset


@pytest.fixture(scope="module")
def scorer(artifact: Artifact) -> BatchScorer:
    return BatchScorer(artifact.network, artifact.scaler)


def chunk_by_chunk(artifact: Artifact, rows: NDArray[np.integer]) -> NDArray[np.float64]:
    """`predict_proba` on each CHUNK_ROWS rows in turn: what the scorer must equal bit for bit."""
    chunks = [
        artifact.predict_proba(rows[i : i + CHUNK_ROWS]) for i in range(0, len(rows), CHUNK_ROWS)
    ]
    return np.concatenate(chunks)


@pytest.mark.parametrize("n", [1, 2, 9, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, 5000])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64, np.float64])
def test_random_rows_score_as_predict_proba_bit_for_bit(
    scorer: BatchScorer, artifact: Artifact, n: int, dtype: type
) -> None:
    rows = np.random.default_rng(n).integers(1, 11, size=(n, 9)).astype(dtype)
    ours = scorer.probabilities(rows)
    assert ours.dtype == np.float64
    assert ours.shape == (n,)
    np.testing.assert_array_equal(ours, chunk_by_chunk(artifact, rows))
    # a short last chunk may take another BLAS kernel than one product: the last bit or two
    np.testing.assert_allclose(ours, artifact.predict_proba(rows), rtol=1e-14)


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
