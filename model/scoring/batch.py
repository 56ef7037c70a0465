"""Batches of validated rows through the fitted scaler and network: the batch routes' hot path.

The scaler is folded into the first layer once, when the scorer is built: with x = (s - min) /
scale, x W1^T + b1 = s V^T + c for V = W1 / scale (column by column) and c = b1 - V min. So a
chunk of raw scores s goes through

    Z1 = s V^T + c          A1 = max(Z1, 0)
    z2 = A1 w2 + b2         p  = 1 / (1 + exp(-z2))

two NumPy steps fewer than `MinMaxScaler.transform` then `TwoLayerNet.forward`, whose
`predict_proba` (the model package's reference) computes the logistic as exp(-logaddexp(0,
-z2)). The products sum the same terms differently rounded, so the two differ in the last bits:
on a million random rows the largest difference was 7.8e-16, and each was as close to the exact
probability (long double, same weights) as the other: 4.7e-16 at most here, 4.8e-16 for
`predict_proba` (tests/unit/model/scoring/test_batch.py holds both bounds). The single-row scorer
(model/scoring/single_row.py) differs from `predict_proba` by as much, for the same reason.
`model.network.logistic` costs a fifth of the logaddexp form (2.7 against 12.7 us for 1,024
logits). What differs besides is how NumPy is asked to run the steps:

- Rows go CHUNK_ROWS at a time, 1,920: a chunk's first product is 1,920 x 9 x 15 = 259,200
  multiply-adds, under the 262,144 above which OpenBLAS may split a product over its threads
  (its GEMM_MULTITHREAD_THRESHOLD of 4 times 65,536; the build pinned here waits longer), and
  on a machine whose cores are busy those threads wait on each other. Each chunk costs a dozen
  NumPy calls whatever its length, and OpenBLAS's small-product setup: on 10,000 rows, chunks of
  512, 1,024 and 1,920 rows took 0.68-0.69, 0.60 and 0.48 ms (fastest of 500 calls, two runs).
- c is added and max(Z1, 0) taken against vectors tiled once to a chunk's length (NumPy runs
  its inner loop over the 15 values of a row at a time otherwise, and max against a Python
  float is not vectorised): on 1,024 rows, add 9.5 -> 3.4 us, ReLU 8.6 -> 4.4 us.
- Every step writes into buffers allocated once a call (`out=`), the last one straight into the
  result, instead of a dozen new arrays a chunk and a concatenation. The largest, Z1, is
  1,920 x 15 x 8 = 225 KiB, over glibc's first mmap threshold (128 KiB): the first call of a
  process maps it fresh; the threshold then rises past it, as it does once the server has
  read any large body.

`python -m scripts.bench.infer` times it (as `ServedModel.score`) beside `predict_proba`. On
10,000 rows of one byte a score (as V2 decodes them), scaling then multiplying in chunks of 1,024
took 0.64-0.66 ms, folded in chunks of 1,920 0.47-0.48 ms, and `predict_proba` 1.44-1.50 ms
(fastest of 500 calls, two runs of each side by side, on a machine without AVX-512). Over HTTP, a
worker serving 10,000-row binary V2 requests from wrk at 8 connections spent 1.48-1.59 ms of CPU
a request against 1.69-1.72 ms before (three runs of each, alternating), answering 1.08-1.17x
the requests a second.
"""

from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.network import TwoLayerNet, logistic
from model.scaler import MinMaxScaler

CHUNK_ROWS: Final = 1920


class BatchScorer:
    """The fitted scaler folded into the network's first layer, its vectors tiled to a chunk
    of CHUNK_ROWS rows.

    Holds no per-call state, so concurrent calls (one thread each) are safe.
    """

    def __init__(self, network: TwoLayerNet, scaler: MinMaxScaler) -> None:
        if scaler.min_ is None or scaler.scale_ is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        self.n_features = scaler.min_.shape[0]
        self.hidden = network.W1_.shape[0]
        V = network.W1_ / scaler.scale_  # W1 (hidden, d) over the scale of each column
        self.VT = np.ascontiguousarray(V.T)
        self.c_tiled = np.tile(network.b1_ - V @ scaler.min_, CHUNK_ROWS)
        self.w2 = network.W2_[0]
        self.b2 = float(network.b2_[0])
        self.zeros = np.zeros(CHUNK_ROWS * self.hidden)

    def probabilities(self, rows: NDArray[np.integer]) -> NDArray[np.float64]:
        """P(malignant) for an (n, n_features) array of whole scores the caller has validated."""
        n, d = rows.shape
        if d != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got {d}")
        out = np.empty(n)
        size = min(n, CHUNK_ROWS)
        s, Z1, z2 = np.empty((size, d)), np.empty((size, self.hidden)), np.empty(size)
        for start in range(0, n, CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            k = len(chunk)
            z = z2[:k]
            self._logits(chunk, s[:k], Z1[:k], z)
            logistic(z, out=out[start : start + k])  # p = 1 / (1 + e^-z2)
        return out

    def _logits(
        self,
        chunk: NDArray[np.integer],
        s: NDArray[np.float64],
        Z1: NDArray[np.float64],
        z2: NDArray[np.float64],
    ) -> None:
        """z2 for one chunk of k rows, through buffers s (k, d), Z1 (k, hidden) and z2 (k,)."""
        flat_Z1 = Z1.reshape(-1)  # a view: the buffer is contiguous
        h = flat_Z1.size
        np.copyto(s, chunk)  # the scores as floats
        np.matmul(s, self.VT, out=Z1)  # Z1 = s V^T
        np.add(flat_Z1, self.c_tiled[:h], out=flat_Z1)  # + c
        np.maximum(flat_Z1, self.zeros[:h], out=flat_Z1)  # A1 = relu(Z1), in place
        np.matmul(Z1, self.w2, out=z2)  # z2 = A1 w2
        np.add(z2, self.b2, out=z2)  # + b2
