"""One row through the fitted scaler and network, in plain Python floats: /predict's hot path.

The same formulas as `MinMaxScaler.transform` and `TwoLayerNet.forward` / `sigmoid`, for one row
of nine raw scores:

    x  = (scores - min) / scale
    Z1 = x W1^T + b1        A1 = relu(Z1)
    z2 = A1 w2 + b2         p  = sigmoid(z2) = exp(-logaddexp(0, -z2))

Why not NumPy, as the batch path: for one row, NumPy's per-call machinery (dtype discovery,
ufunc dispatch, a dozen calls) is not only slower than the arithmetic, its code and tables are
large, and a /predict also runs FastAPI, pydantic and the server. valgrind's cache simulation of
a /predict in process (cachegrind with a 512 KiB L2, this machine's, as its last level) counted
4,560 L2 misses a request with the NumPy row and 2,870 with these tables, for about the same
instructions (416,000 and 413,000): at roughly 20 ns a miss here, about 30 us of a request that
the 8 us the NumPy row takes in a tight loop did not show. Side by side over HTTP
(`python -m scripts.bench.ab`), /predict answered 5-30% more requests a second (1.10x at 8
connections). The sums run in another order than BLAS's, so a probability may differ from
`Artifact.predict_proba`'s in the last bits (tests/unit/model/scoring/test_single_row.py bounds it);
the
sigmoid is NumPy's `logaddexp` formula, term for term.
"""

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from model.features import SCORE_MAX, SCORE_MIN
from model.network import TwoLayerNet
from model.scaler import MinMaxScaler

LN2: Final = math.log(2.0)
SCORES: Final = np.arange(SCORE_MIN, SCORE_MAX + 1, dtype=np.float64)  # 1.0 .. 10.0


class SingleRowScorer:
    """The fitted scaler and first layer as tables of floats, for one row at a time.

    A score takes one of ten values, so its term of the first layer, W1[:, j] x_j with x_j its
    scaled value, is one of ten vectors: `contributions[j][v]` holds each, computed once, and
    Z1 is the sum of the nine the row picks, plus b1 (held in the first feature's vectors).
    """

    def __init__(self, network: TwoLayerNet, scaler: MinMaxScaler) -> None:
        if scaler.min_ is None or scaler.scale_ is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        W1, b1 = network.W1_, network.b1_
        scaled = (SCORES[:, np.newaxis] - scaler.min_) / scaler.scale_  # x for each value
        # contributions[j][v] = W1[:, j] x_j(v), the bias added to the first feature's.
        values = SCORES.astype(int).tolist()
        self.contributions: list[dict[float, tuple[float, ...]]] = []
        for j in range(W1.shape[1]):
            terms = scaled[:, j, np.newaxis] * W1[:, j] + (b1 if j == 0 else 0.0)
            self.contributions.append(dict(zip(values, map(tuple, terms.tolist()), strict=True)))
        self.w2 = network.W2_[0].tolist()
        self.b2 = float(network.b2_[0])

    def logit(self, scores: Sequence[float]) -> float:
        """z2 for one row of nine whole scores 1..10 (KeyError for any other value)."""
        picked = [table[s] for table, s in zip(self.contributions, scores, strict=True)]
        z2 = self.b2
        for z1, out_weight in zip(map(sum, zip(*picked, strict=True)), self.w2, strict=True):
            if z1 > 0.0:  # relu: a unit at or below 0 adds nothing
                z2 += z1 * out_weight
        return z2

    def probability(self, scores: Sequence[float]) -> float:
        return sigmoid(self.logit(scores))


def sigmoid(z: float) -> float:
    """`model.network.sigmoid` for one float: exp(-logaddexp(0, -z)), with logaddexp as NumPy
    computes it (npy_logaddexp), so that z never overflows."""
    if z == 0.0:
        return math.exp(-LN2)
    if z > 0.0:  # logaddexp(0, -z) = 0 + log1p(exp(-z))
        return math.exp(-math.log1p(math.exp(-z)))
    return math.exp(-(-z + math.log1p(math.exp(z))))  # = -z + log1p(exp(z))
