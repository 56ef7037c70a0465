"""Train/validation splits of the complete rows (indices into the 683-row data set)."""

from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

SplitName = Literal["seed", "stratified"]
SPLITS: Final[tuple[SplitName, ...]] = ("seed", "stratified")
Indices = NDArray[np.int64]

# The article's split: rows 0..499 train, 501..682 validate. Row 500 is in neither set because
# the article sliced [0:500] and [501:683]; we keep that so its numbers reproduce exactly.
SEED_TRAIN_END: Final = 500
SEED_VALID_START: Final = 501
STRATIFIED_VALID_FRACTION: Final = 0.2


def seed_split(n_rows: int) -> tuple[Indices, Indices]:
    if n_rows <= SEED_VALID_START:
        raise ValueError(
            f"the article's split needs more than {SEED_VALID_START} rows, got {n_rows}"
        )
    return np.arange(SEED_TRAIN_END), np.arange(SEED_VALID_START, n_rows)


def stratified_split(
    y: ArrayLike, seed: int, valid_fraction: float = STRATIFIED_VALID_FRACTION
) -> tuple[Indices, Indices]:
    """Each class shuffled by a seeded RNG; round(fraction * class size) of it validates."""
    labels = np.asarray(y)
    rng = np.random.RandomState(seed)
    valid: list[Indices] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_valid = round(valid_fraction * len(members))
        valid.append(rng.permutation(members)[:n_valid])
    valid_idx = np.sort(np.concatenate(valid))
    train_idx = np.setdiff1d(np.arange(len(labels)), valid_idx)
    return train_idx.astype(np.int64), valid_idx.astype(np.int64)


def stratified_folds(y: ArrayLike, folds: int, seed: int) -> Indices:
    """The fold (0 .. folds - 1) of each row: each class shuffled by a seeded RNG, then dealt out
    in turn, so every fold holds a near-equal share of each class."""
    labels = np.asarray(y)
    if not 2 <= folds <= len(labels):
        raise ValueError(f"folds must lie in 2..{len(labels)} (the number of rows), got {folds}")
    rng = np.random.RandomState(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        fold[members] = np.arange(len(members)) % folds
    return fold


def make_split(name: SplitName, y: ArrayLike, seed: int) -> tuple[Indices, Indices]:
    if name == "seed":
        return seed_split(len(np.asarray(y)))
    if name == "stratified":
        return stratified_split(y, seed)
    raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
