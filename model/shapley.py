"""Exact interventional Shapley values of one prediction, over all 2^9 = 512 coalitions.

For a model output f, an input x and background rows b (here the training rows), a coalition S
of features keeps x's scores on S and takes the others from b; its value is the mean over the
background:

    v(S) = mean_b f(x_S, b_notS)            v({}) = mean_b f(b)      v(all) = f(x)

The Shapley value of feature i averages its marginal contribution over every coalition
without it, weighted by how many orderings of the d = 9 features put S before i:

    phi_i = sum_{S not containing i} |S|! (d - |S| - 1)! / d! * [v(S + i) - v(S)]

They add up exactly: v({}) + sum_i phi_i = f(x). v({}) is the base value, what the model
outputs on average over the background; phi_i is how much x's score i moved the output from
there. No sampling: all 512 coalitions are evaluated, so the values are exact up to rounding.

Two outputs are explained, each exactly for itself: the probability p = sigmoid(z) and the
log-odds z (the network's logit). The log-odds values are not the logit of the probability
ones: averaging over the background does not commute with the sigmoid.

Vectorized, with the inputs scaled (the min-max scaler acts per feature, so mixing raw scores
and mixing scaled ones is the same). The first layer is linear in its inputs, so for background
row b the hidden pre-activations of a coalition are the background row's plus one change per
feature of x that it holds:

    Z1(S, b) = W1 b + b1 + sum_{i in S} W1[:, i] (x_i - b_i)

Numbering coalitions by bit masks (bit i set: i is in S), those with bit i set are the ones
below 2^i plus feature i's change, so nine vectorized additions build all 512 from Z1({}, b)
(the hidden state of b itself, computed once per artifact): no matrix product per explanation.
The ReLU, the output layer and the weighted mean over b follow, then phi = C v with C the
(9, 512) matrix of the weights above.

The background is stored as distinct rows with their counts, and the mean is weighted by the
counts: the same values as averaging over every training row, in fewer evaluations.
"""

import threading
from dataclasses import dataclass
from math import factorial
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.network import TwoLayerNet, logistic
from model.scaler import MinMaxScaler
from model.scoring.single_row import SingleRowScorer, sigmoid

Array = NDArray[np.float64]
# Background rows per block: bounds the working array (hidden x 512 x rows floats, 3.9 MB for
# 64 rows and 15 units) whatever the size of the background.
BLOCK_ROWS: Final = 64


def coalition_masks(d: int) -> NDArray[np.bool_]:
    """(2^d, d): row s holds feature i when bit i of s is set; row 0 is empty, the last full."""
    s = np.arange(2**d)[:, np.newaxis]
    return ((s >> np.arange(d)) & 1).astype(bool)


def shapley_weights(d: int) -> Array:
    """(d, 2^d) matrix C with phi = C v, for v the coalition values in `coalition_masks` order.

    C[i, S + i] += w(|S|) and C[i, S] -= w(|S|) for each S without i, w(k) = k! (d-k-1)! / d!.
    """
    masks = coalition_masks(d)
    sizes = masks.sum(axis=1)
    w = np.array([factorial(k) * factorial(d - k - 1) / factorial(d) for k in range(d)])
    C = np.zeros((d, 2**d))
    for i in range(d):
        without_i = np.flatnonzero(~masks[:, i])
        C[i, without_i | (1 << i)] += w[sizes[without_i]]
        C[i, without_i] -= w[sizes[without_i]]
    return C


@dataclass(frozen=True)
class Explanation:
    """phi for one input, in probability and in log-odds; each side adds up to its output:
    base_probability + phi_probability.sum() == probability (to rounding), and the same for
    log-odds."""

    probability: float
    base_probability: float
    phi_probability: Array
    log_odds: float
    base_log_odds: float
    phi_log_odds: Array


class ShapleyExplainer:
    """Exact interventional Shapley values of a TwoLayerNet on raw scores, against a weighted
    background of raw score rows (distinct rows and how many times each occurs).

    Thread-safe, one explanation at a time: the working arrays (about 7 MB for the served
    artifact) are allocated once and reused under a lock. Allocated per call from a thread
    pool, they stayed in the threads' malloc arenas: a server answering /explain on 8
    connections for 15 s grew from 67 to 102 MB; reusing them, from 67 to 77 MB, and it
    answered 129 explanations in that time rather than 97 (one after the other, same load).
    """

    def __init__(
        self,
        network: TwoLayerNet,
        scaler: MinMaxScaler,
        rows: ArrayLike,
        counts: ArrayLike,
        single_row: SingleRowScorer | None = None,
    ) -> None:
        """`single_row` scores the explained output (/predict's scorer: `Artifact` passes its
        own); by default one is built from `network` and `scaler`."""
        rows = np.asarray(rows, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] == 0 or counts.shape != (rows.shape[0],):
            raise ValueError("background needs a non-empty (n, d) array and n counts")
        if not (counts > 0).all():
            raise ValueError("background counts must be positive")
        self.network, self.scaler = network, scaler
        self.single_row = single_row or SingleRowScorer(network, scaler)
        d = rows.shape[1]
        self.n_features = d
        self.n_coalitions = 2**d
        self.C = shapley_weights(d)
        self.background = scaler.transform(rows)  # (n_b, d), scaled
        self.weights = counts / counts.sum()
        # Z1({}, b) = W1 b + b1 for each background row, hidden-major: (hidden, n_b).
        self.background_Z1 = network.W1_ @ self.background.T + network.b1_[:, np.newaxis]
        hidden, n_b = self.background_Z1.shape
        self._lock = threading.Lock()
        self._Z1 = np.empty(hidden * self.n_coalitions * min(BLOCK_ROWS, n_b))
        self._logits = np.empty((self.n_coalitions, n_b))

    def coalition_logits(self, x_scaled: Array) -> Array:
        """(512, n_b): the logit of every hybrid row (x on S, background row b elsewhere), in
        the working array; the caller holds the lock."""
        W1, w2, b2 = self.network.W1_, self.network.W2_[0], self.network.b2_[0]
        hidden, n_b = self.background_Z1.shape
        n_coalitions = self.n_coalitions
        out = self._logits
        for start in range(0, n_b, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n_b)
            # change[:, i, b] = W1[:, i] (x_i - b_i): feature i switching from b's score to x's
            change = W1[:, :, np.newaxis] * (x_scaled - self.background[start:stop]).T
            Z1 = self._Z1[: hidden * n_coalitions * (stop - start)]
            Z1 = Z1.reshape(hidden, n_coalitions, stop - start)
            Z1[:, 0] = self.background_Z1[:, start:stop]
            for i in range(self.n_features):
                n = 1 << i  # coalitions n..2n-1 are coalitions 0..n-1 with feature i added
                np.add(Z1[:, :n], change[:, i, np.newaxis], out=Z1[:, n : 2 * n])
            np.maximum(Z1, 0.0, out=Z1)
            out[:, start:stop] = _dot(w2, Z1.reshape(hidden, -1)).reshape(n_coalitions, -1)
        out += b2
        return out

    def explain(self, scores: ArrayLike) -> Explanation:
        """The Shapley values of one row of raw scores, shape (d,)."""
        x = self.scaler.transform(np.asarray(scores, dtype=np.float64).reshape(1, -1))[0]
        with self._lock:
            logits = self.coalition_logits(x)
            v_log_odds = _dot(logits, self.weights)
            # logistic, not model.network.sigmoid, whose logaddexp took 3x as long on the
            # 512 x 368 logits (11 against 32 ms median, side by side, under a load of 8)
            v_probability = _dot(logistic(logits), self.weights)  # overwrites the logits
        # The output itself as `Artifact.predict_one` computes it (the same bits as /predict);
        # v(all) is the same number up to rounding.
        z = self.single_row.logit(np.asarray(scores, dtype=np.float64).tolist())
        return Explanation(
            probability=sigmoid(z),
            base_probability=float(v_probability[0]),
            phi_probability=_dot(self.C, v_probability),
            log_odds=float(z),
            base_log_odds=float(v_log_odds[0]),
            phi_log_odds=_dot(self.C, v_log_odds),
        )


def _dot(a: Array, b: Array) -> Array:
    """a @ b for a matrix and a vector, in either order, without BLAS: NumPy's own loop
    (einsum) made an explanation 3x faster than BLAS's threads did on a busy 2-core machine
    (61 against 188 ms median, side by side, under a load average of 9)."""
    product: Array = np.einsum("i,ij->j" if a.ndim == 1 else "ij,j->i", a, b)
    return product


def distinct_rows(X: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct rows of X in lexicographic order and how many times each occurs."""
    rows, counts = np.unique(np.asarray(X, dtype=np.int64), axis=0, return_counts=True)
    return rows.astype(np.int64), counts.astype(np.int64)
