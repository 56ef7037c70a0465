"""Whether a score vector is unlike the training rows: the per-request typicality check.

Why pairs, not the nearest training row in nine dimensions: nine scores of ten values span 10^9
vectors and the training rows are a few hundred, most of them distinct, so in nine dimensions
nearly every row is far from every other (the malignant rows especially), and a distance
threshold low enough to flag anything flags many real rows. Two scores at a time, the rows fill
a 10 x 10 plane densely enough to say what does not occur together: uniform cell size with a very
irregular cell shape, bland cells with ten mitoses.

The rule. In the plane of each pair of scores (i, j), the support of a cell (a, b) is a kernel
count of the training rows around it: a row at Chebyshev distance k in that plane
(max(|t_i - a|, |t_j - b|) = k) counts DECAY^k, so a row on the cell counts 1, one step away a
quarter. A row's typicality is its smallest support over the 36 planes; it is atypical when that
is below a threshold tau. tau is set by leave-one-out on the reference rows: each row's support
without itself (its own 1 taken out), and tau the largest value that flags at most the stated
share of them (default 1%). The share it does flag is `model.leave_one_out_rate`.

Hot path: the cells below tau in the 36 planes are folded into, per score and value, one integer
bit mask of the (score, value) cells that may not occur with it: a row is a sum of nine bits and
nine ANDs (`is_atypical`, pure Python, no NumPy call). `atypical_rows` is the vectorized form.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from operator import getitem
from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.artifact import Artifact
from model.features import FEATURE_NAMES, N_FEATURES, SCORE_MAX, SCORE_MIN

DEFAULT_FALSE_ALARM: Final = 0.01
DECAY: Final = 0.25  # a training row one step away in a plane counts a quarter of one on the cell
N_VALUES: Final = SCORE_MAX - SCORE_MIN + 1
PAIRS: Final = tuple(combinations(range(N_FEATURES), 2))
_FIRST: Final = np.array([i for i, _ in PAIRS], dtype=np.intp)
_SECOND: Final = np.array([j for _, j in PAIRS], dtype=np.intp)


def pair_counts(rows: NDArray[np.integer], counts: NDArray[np.integer]) -> NDArray[np.int64]:
    """(36, 10, 10): per pair of scores, how many rows hold each pair of values."""
    x = np.asarray(rows, dtype=np.intp) - SCORE_MIN
    cells = np.zeros((len(PAIRS), N_VALUES * N_VALUES), dtype=np.int64)
    for p, (i, j) in enumerate(PAIRS):
        cells[p] = np.bincount(x[:, i] * N_VALUES + x[:, j], weights=counts, minlength=100)
    return cells.reshape(len(PAIRS), N_VALUES, N_VALUES)


def support(cells: NDArray[np.int64], decay: float = DECAY) -> NDArray[np.float64]:
    """Per pair and cell, the kernel count of rows around it: decay ** (Chebyshev distance)."""
    n = N_VALUES
    padded = np.zeros((cells.shape[0], 3 * n - 2, 3 * n - 2))
    padded[:, n - 1 : 2 * n - 1, n - 1 : 2 * n - 1] = cells
    out = np.zeros(cells.shape, dtype=np.float64)
    for da in range(-(n - 1), n):
        for db in range(-(n - 1), n):
            weight = decay ** max(abs(da), abs(db))
            out += weight * padded[:, n - 1 + da : 2 * n - 1 + da, n - 1 + db : 2 * n - 1 + db]
    return out


def _pair_cells(rows: NDArray[np.integer]) -> NDArray[np.intp]:
    """(n, 36) flat cell index of each row in each pair's plane."""
    x = np.asarray(rows, dtype=np.intp) - SCORE_MIN
    return x[:, _FIRST] * N_VALUES + x[:, _SECOND]


def leave_one_out_support(
    rows: NDArray[np.integer], counts: NDArray[np.integer], decay: float = DECAY
) -> NDArray[np.float64]:
    """Per distinct reference row, its smallest support over the pairs with itself taken out
    (one row on its own cell counts 1; its duplicates stay)."""
    near = support(pair_counts(rows, counts), decay).reshape(len(PAIRS), -1)
    return np.asarray((near[np.arange(len(PAIRS)), _pair_cells(rows)] - 1.0).min(axis=1))


def loo_threshold(
    loo: NDArray[np.float64], counts: NDArray[np.integer], level: float
) -> tuple[float, float]:
    """The largest tau flagging (support < tau) at most `level` of the rows (weighted by their
    counts), and the share it flags."""
    weights = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    values = np.unique(loo)  # ascending
    below = np.array([weights[loo < v].sum() for v in values])
    ok = values[below <= level]
    tau = float(ok[-1])
    return tau, float(weights[loo < tau].sum())


@dataclass(frozen=True)
class TypicalityModel:
    decay: float
    threshold: float  # tau: atypical when the smallest support over the pairs is below it
    false_alarm_level: float
    leave_one_out_rate: float  # the share of reference rows flagged by leave-one-out


class Typicality:
    """The typicality check against reference rows (distinct score vectors and their counts)."""

    def __init__(
        self,
        rows: NDArray[np.integer],
        counts: NDArray[np.integer],
        false_alarm: float = DEFAULT_FALSE_ALARM,
        decay: float = DECAY,
    ) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != N_FEATURES or len(rows) != len(counts):
            raise ValueError("reference rows must be (n, 9) with one count each")
        if not 0.0 < false_alarm < 1.0 or not 0.0 < decay < 1.0:
            raise ValueError("false_alarm and decay must lie in (0, 1)")
        tau, rate = loo_threshold(leave_one_out_support(rows, counts, decay), counts, false_alarm)
        self.model = TypicalityModel(decay, tau, false_alarm, rate)
        self.support = support(pair_counts(rows, counts), decay)  # (36, 10, 10)
        self.forbidden: NDArray[np.bool_] = self.support < tau
        self._flat = self.forbidden.reshape(-1)
        self._bits, self._masks = _bit_tables(self.forbidden)
        # The same tables as arrays for batches, when the bits fit a machine word.
        widest = max(max(row) for row in self._masks).bit_length()
        self._arrays = (
            (np.array(self._bits, dtype=np.uint64), np.array(self._masks, dtype=np.uint64))
            if widest <= 64
            else None
        )

    @classmethod
    def from_artifact(
        cls, artifact: Artifact, false_alarm: float = DEFAULT_FALSE_ALARM
    ) -> "Typicality":
        """Against the artifact's training rows (its explainer background)."""
        return cls(artifact.background_rows, artifact.background_counts, false_alarm)

    def is_atypical(self, scores: Sequence[int]) -> bool:
        """One row of nine whole scores 1..10 (validated by the caller; ints, not floats)."""
        present = sum(map(getitem, self._bits, scores))
        return any(map(present.__and__, map(getitem, self._masks, scores)))

    def atypical_rows(self, rows: NDArray[np.integer]) -> NDArray[np.bool_]:
        """(n, 9) whole scores 1..10 -> (n,) bool: `is_atypical` for each row, with the bit
        tables gathered per column (18 lookups a row), or the 36 planes if they do not fit."""
        if self._arrays is None:
            cells = _pair_cells(rows) + np.arange(len(PAIRS)) * (N_VALUES * N_VALUES)
            return np.asarray(self._flat[cells].any(axis=1), dtype=np.bool_)
        bits, masks = self._arrays
        present = np.zeros(len(rows), dtype=np.uint64)
        for j in range(N_FEATURES):
            present |= bits[j].take(rows[:, j])
        clash = np.zeros(len(rows), dtype=np.uint64)
        for j in range(N_FEATURES):
            clash |= masks[j].take(rows[:, j])
        return np.asarray((clash & present) != 0, dtype=np.bool_)

    def unsupported_pairs(self, scores: Sequence[int]) -> list[tuple[str, str]]:
        """The pairs of scores whose values no training row comes near (why a row is flagged)."""
        return [
            (FEATURE_NAMES[i], FEATURE_NAMES[j])
            for p, (i, j) in enumerate(PAIRS)
            if self.forbidden[p, scores[i] - SCORE_MIN, scores[j] - SCORE_MIN]
        ]


def _bit_tables(
    forbidden: NDArray[np.bool_],
) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """bits[i][v]: the bit of score i at value v; masks[i][v]: the bits of the (score, value)
    cells that may not occur together with score i at v. Only the few (score, value) cells that
    belong to some forbidden pair get a bit (the others are 0), so the masks are small ints,
    whose arithmetic CPython does in one machine word. Indexed by the value itself (index 0
    unused), so a row's scores index them directly."""
    cells = sorted(
        {
            (i, int(a) + SCORE_MIN)
            for p, (i, _) in enumerate(PAIRS)
            for a in np.nonzero(forbidden[p])[0]
        }
        | {
            (j, int(b) + SCORE_MIN)
            for p, (_, j) in enumerate(PAIRS)
            for b in np.nonzero(forbidden[p])[1]
        }
    )
    bit = {cell: 1 << k for k, cell in enumerate(cells)}
    bits = [[bit.get((i, v), 0) for v in range(SCORE_MAX + 1)] for i in range(N_FEATURES)]
    masks = [[0] * (SCORE_MAX + 1) for _ in range(N_FEATURES)]
    for p, (i, j) in enumerate(PAIRS):
        for a, b in zip(*np.nonzero(forbidden[p]), strict=True):
            va, vb = int(a) + SCORE_MIN, int(b) + SCORE_MIN
            masks[i][va] |= bits[j][vb]
            masks[j][vb] |= bits[i][va]
    return tuple(map(tuple, bits)), tuple(map(tuple, masks))
