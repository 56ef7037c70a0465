"""The typicality check: its false-alarm rate by leave-one-out, recomputed by brute force; the
held-out rows; a designed set of implausible rows; the single-row form against the batch form;
its cost beside the single-row scorer's."""

from itertools import combinations

import numpy as np
import pytest
from numpy.typing import NDArray

from app.monitoring.typicality import (
    DECAY,
    DEFAULT_FALSE_ALARM,
    Typicality,
    leave_one_out_support,
)
from model.artifact import Artifact
from model.data import Dataset
from model.features import FEATURE_NAMES
from model.splits import make_split

# Each row pairs scores that do not go together in cytology, nor in these data:
IMPLAUSIBLE = {
    # bland cells in every respect, yet every nucleus bare and mitoses at their highest
    "bland_but_bare_nuclei_and_mitoses": [1, 1, 1, 1, 1, 10, 1, 1, 10],
    # cells as varied in size as can be, yet perfectly uniform in shape (the two move together)
    "varied_size_uniform_shape": [1, 10, 1, 1, 1, 1, 1, 1, 1],
    # the mirror: uniform in size, as varied in shape as can be
    "uniform_size_varied_shape": [1, 1, 10, 1, 1, 1, 1, 1, 1],
    # every feature at its most malignant except the two uniformity scores at their most benign
    "malignant_but_uniform": [10, 1, 1, 10, 10, 10, 10, 10, 10],
    # a malignant-looking row whose cells vary in size as much as can be, yet not in shape
    "malignant_varied_size_uniform_shape": [10, 10, 1, 10, 10, 10, 10, 10, 10],
    # maximal mitotic activity in otherwise normal tissue
    "mitoses_alone": [1, 1, 1, 1, 1, 1, 1, 1, 10],
}
ORDINARY = {
    "all_ones": [1] * 9,  # the commonest benign row
    "all_tens": [10] * 9,  # a malignant row that does occur
}


@pytest.fixture(scope="module")
def typicality(artifact: Artifact) -> Typicality:
    return Typicality.from_artifact(artifact)


def brute_force_loo(rows: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Each distinct row's smallest pair support with one copy of itself removed, by summing
    decay ** (Chebyshev distance in the pair's plane) over every other training row."""
    pairs = list(combinations(range(9), 2))
    out = np.empty(len(rows))
    for k, row in enumerate(rows):
        others = counts.astype(np.float64).copy()
        others[k] -= 1
        supports = []
        for i, j in pairs:
            d = np.maximum(np.abs(rows[:, i] - row[i]), np.abs(rows[:, j] - row[j]))
            supports.append(np.sum(others * DECAY**d))
        out[k] = min(supports)
    return out


@pytest.mark.slow
def test_leave_one_out_support_equals_brute_force(artifact: Artifact) -> None:
    rows, counts = artifact.background_rows, artifact.background_counts
    np.testing.assert_allclose(
        leave_one_out_support(rows, counts), brute_force_loo(rows, counts), rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_leave_one_out_false_alarms_are_within_the_level(
    artifact: Artifact, typicality: Typicality
) -> None:
    rows, counts = artifact.background_rows, artifact.background_counts
    loo = brute_force_loo(rows, counts)
    flagged = counts[loo < typicality.model.threshold].sum() / counts.sum()
    assert flagged == typicality.model.leave_one_out_rate
    assert 0.0 < flagged <= DEFAULT_FALSE_ALARM
    # the threshold is the largest at that level: the next support up would flag too many
    above = np.unique(loo[loo >= typicality.model.threshold])
    if len(above) > 1:
        assert counts[loo < above[1]].sum() / counts.sum() > DEFAULT_FALSE_ALARM


@pytest.mark.slow
def test_leave_one_out_on_the_whole_data_set(dataset: Dataset) -> None:
    rows, counts = np.unique(dataset.X, axis=0, return_counts=True)
    model = Typicality(rows, counts).model
    assert model.leave_one_out_rate <= DEFAULT_FALSE_ALARM
    flagged = counts[brute_force_loo(rows, counts) < model.threshold].sum() / counts.sum()
    assert flagged == model.leave_one_out_rate


def test_held_out_validation_rows_are_rarely_flagged(
    artifact: Artifact, dataset: Dataset, typicality: Typicality
) -> None:
    _, valid = make_split("stratified", dataset.y, artifact.training.seed)
    assert (dataset.sample_ids[valid] == artifact.valid_sample_ids).all()
    flagged = typicality.atypical_rows(dataset.X[valid])
    # rows the reference never saw: 137 of them, so a 1% rate flags about one
    assert flagged.sum() <= 4


@pytest.mark.parametrize("name", IMPLAUSIBLE)
def test_implausible_rows_are_flagged(name: str, typicality: Typicality, dataset: Dataset) -> None:
    row = IMPLAUSIBLE[name]
    assert not (np.asarray(row) == dataset.X).all(axis=1).any()
    assert typicality.is_atypical(row)
    assert typicality.unsupported_pairs(row)


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_rows_are_not_flagged(name: str, typicality: Typicality) -> None:
    assert not typicality.is_atypical(ORDINARY[name])
    assert typicality.unsupported_pairs(ORDINARY[name]) == []


def test_single_row_equals_batch_form(typicality: Typicality, dataset: Dataset) -> None:
    rng = np.random.default_rng(11)
    rows = np.vstack([dataset.X, rng.integers(1, 11, (20000, 9))]).astype(np.uint8)
    batch = typicality.atypical_rows(rows)
    single = np.array([typicality.is_atypical(r) for r in rows.tolist()])
    assert (batch == single).all()
    assert 0.0 < batch[len(dataset.X) :].mean() < 1.0  # random vectors: some flagged, not all


def test_flagged_rows_name_their_pairs(typicality: Typicality) -> None:
    row = IMPLAUSIBLE["mitoses_alone"]
    assert all("mitoses" in pair for pair in typicality.unsupported_pairs(row))
    assert all(set(pair) <= set(FEATURE_NAMES) for pair in typicality.unsupported_pairs(row))


def test_bad_reference_is_refused(artifact: Artifact) -> None:
    with pytest.raises(ValueError, match="reference rows"):
        Typicality(artifact.background_rows[:, :8], artifact.background_counts)
    with pytest.raises(ValueError, match="false_alarm"):
        Typicality(artifact.background_rows, artifact.background_counts, false_alarm=0.0)


def test_batch_form_without_word_sized_masks(artifact: Artifact, dataset: Dataset) -> None:
    # More than 64 (score, value) cells in forbidden pairs: the 36 planes are looked up instead.
    wide = Typicality.from_artifact(artifact)
    wide._arrays = None
    rng = np.random.default_rng(13)
    rows = np.vstack([dataset.X, rng.integers(1, 11, (5000, 9))])
    assert (
        wide.atypical_rows(rows) == Typicality.from_artifact(artifact).atypical_rows(rows)
    ).all()
