"""ServedModel.score, the protocol-neutral batch core of /predict/batch and V2 infer."""

import numpy as np
import pytest

from app.core.dataplane import ServedModel
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.data import Dataset
from model.scoring.batch import CHUNK_ROWS


@pytest.fixture(scope="module")
def model() -> ServedModel:
    return ServedModel.load(DEFAULT_ARTIFACT_PATH)


@pytest.mark.parametrize("n", [1, 2, CHUNK_ROWS, CHUNK_ROWS + 1, 10_000])
def test_score_in_chunks_matches_one_product(model: ServedModel, dataset: Dataset, n: int) -> None:
    X = dataset.X[np.arange(n) % len(dataset.X)]
    scored = model.score(X, None)
    # BLAS may take another kernel for a short last chunk: equal to the last bit or two.
    np.testing.assert_allclose(scored.probabilities, model.artifact.predict_proba(X), rtol=1e-14)
    assert scored.threshold == model.default_threshold
    np.testing.assert_array_equal(scored.malignant, scored.probabilities > 0.2)


def test_score_threshold_and_batch_agree(model: ServedModel, dataset: Dataset) -> None:
    rows = [tuple(r) for r in dataset.X[:20].tolist()]
    scored = model.score(dataset.X[:20], 0.9)
    batch = model.predict_batch(rows, 0.9, None)
    assert [p.probability for p in batch.rows] == scored.probabilities.tolist()
    assert [p.predicted_class == "malignant" for p in batch.rows] == scored.malignant.tolist()
