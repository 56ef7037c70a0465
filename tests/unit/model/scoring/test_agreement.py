"""Every fast variant of the forward pass agrees with the reference, `predict_proba`."""

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from model.artifact import Artifact, load_artifact
from model.data import load_dataset
from model.network import _Trainer

Variant = Callable[[Artifact, NDArray[np.int64]], NDArray[np.float64]]
# Largest difference in probability from the reference (rounding of the same terms).
TOLERANCE = 2e-15


def _single_row(artifact: Artifact, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.array([artifact.predict_one(row) for row in rows.tolist()])


def _batch(artifact: Artifact, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    return artifact.score_rows(rows)


def _coalitions(artifact: Artifact, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.array([artifact.explain(row).probability for row in rows[:50]])


def _trainer(artifact: Artifact, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    X = artifact.scaler.transform(rows.astype(np.float64))
    trainer = _Trainer(artifact.network, X, np.zeros(len(rows)), lr=1.0)
    logits = trainer.logits(np.vstack([X.T, np.ones(len(rows))]))
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


VARIANTS: dict[str, Variant] = {
    "single row": _single_row,
    "batch": _batch,
    "coalitions": _coalitions,
    "trainer": _trainer,
}


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return load_artifact()


@pytest.fixture(scope="module")
def rows() -> NDArray[np.int64]:
    return load_dataset().X.astype(np.int64)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_agrees_with_the_reference(
    name: str, artifact: Artifact, rows: NDArray[np.int64]
) -> None:
    got = VARIANTS[name](artifact, rows)
    expected = artifact.predict_proba(rows[: len(got)])
    assert len(got) >= 50
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE, err_msg=name)
