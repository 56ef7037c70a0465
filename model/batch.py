"""Batches of validated rows through the fitted scaler and network: the batch routes' hot path.

The same steps as `MinMaxScaler.transform` and `TwoLayerNet.forward`, on the same values in the
same order, then the logistic function as 1 / (1 + e^-z2):

    x  = (scores - min) / scale
    Z1 = x W1^T + b1        A1 = max(Z1, 0)
    z2 = A1 w2 + b2         p  = 1 / (1 + exp(-z2))

so each chunk's logits are `Artifact.predict_proba`'s on that chunk, bit for bit, and its
probabilities are `model.network.logistic` of them, bit for bit (tests/model/test_batch.py).
`model.network.sigmoid` (and so `predict_proba` and the single-row scorer) computes
exp(-logaddexp(0, -z2)) instead; the two agree to 2.3e-16 in absolute terms. Against long
double over z2 in [-60, 60], `logistic` is within 2.3 ulps of the exact value everywhere and
`sigmoid` within 32 (for negative logits: its exp multiplies the rounding of a logit's
logaddexp, near -z2, by -z2), and `logistic` costs a fifth as much: 2.7
against 12.7 us for 1,024 logits (fastest of 7 x 1,000 calls), about 0.1 ms of a 10,000-row
request's 1.1-1.3 ms of worker CPU. The explanations (model/shapley.py) use it for the same
reason. What differs besides is how NumPy is asked to run the steps:

- Rows go CHUNK_ROWS at a time. OpenBLAS splits a product over its threads above about 262,144
  multiply-adds (9 x 15 per row: about 1,940 rows), and on a machine whose cores are busy those
  threads wait on each other; and an array over glibc's mmap threshold (128 KiB until the heap
  has grown) is fresh pages each call: `predict_proba` on 10,000 rows at once made 560 page
  faults a call and took 1.6-2.0 ms in a new process, 0.62 ms where earlier large frees had
  raised the threshold. A chunk's largest array, Z1, is 1,024 x 15 x 8 = 120 KiB.
- x - min, x / scale and Z1 + b1 broadcast a vector along rows of 9 or 15 values, and NumPy then
  runs its inner loop 9 or 15 elements at a time; max(Z1, 0.0) against a Python float takes a
  loop that is not vectorised. Here the vectors (and the zeros) are tiled once to a chunk's
  length, so each step is one long loop over contiguous operands: the same operation on the
  same pairs of values. On 1,024 rows: subtract 11.2 -> 5.1 us, divide 9.6 -> 3.6, add b1
  9.5 -> 3.4, ReLU 8.6 -> 4.4 (fastest of 3,000 calls each).
- Every step writes into buffers allocated once a call (`out=`), the last one straight into the
  result, instead of a dozen new arrays a chunk and a concatenation.

`python -m scripts.bench.infer` times it (as `ServedModel.score`) beside `predict_proba`: on
10,000 rows 0.49-0.51 ms against 0.72-0.75 ms for `predict_proba` chunk by chunk (fastest of
1,500 calls, this machine). Over HTTP, a worker serving 10,000-row binary V2 requests from wrk
at 8 connections spent 1.36-1.77 ms of CPU a request against 1.81-2.05 ms before (three runs
side by side; 1.16-1.33x the requests a second).
"""

from typing import Final

import numpy as np
from numpy.typing import NDArray

from model.network import TwoLayerNet, logistic
from model.scaler import MinMaxScaler

CHUNK_ROWS: Final = 1024


class BatchScorer:
    """The fitted scaler and network with their vectors tiled to a chunk of CHUNK_ROWS rows.

    Holds no per-call state, so concurrent calls (one thread each) are safe.
    """

    def __init__(self, network: TwoLayerNet, scaler: MinMaxScaler) -> None:
        if scaler.min_ is None or scaler.scale_ is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        self.n_features = scaler.min_.shape[0]
        self.hidden = network.W1_.shape[0]
        self.W1T = network.W1_.T
        self.w2 = network.W2_[0]
        self.b2 = float(network.b2_[0])
        self.min_tiled = np.tile(scaler.min_, CHUNK_ROWS)
        self.scale_tiled = np.tile(scaler.scale_, CHUNK_ROWS)
        self.b1_tiled = np.tile(network.b1_, CHUNK_ROWS)
        self.zeros = np.zeros(CHUNK_ROWS * self.hidden)

    def probabilities(self, rows: NDArray[np.integer]) -> NDArray[np.float64]:
        """P(malignant) for an (n, n_features) array of whole scores the caller has validated."""
        n, d = rows.shape
        if d != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got {d}")
        rows = np.ascontiguousarray(rows)
        out = np.empty(n)
        size = min(n, CHUNK_ROWS)
        x, Z1, z2 = np.empty((size, d)), np.empty((size, self.hidden)), np.empty(size)
        for start in range(0, n, CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            k = len(chunk)
            z = z2[:k]
            self._logits(chunk, x[:k], Z1[:k], z)
            logistic(z, out=out[start : start + k])  # p = 1 / (1 + e^-z2)
        return out

    def _logits(
        self,
        chunk: NDArray[np.integer],
        x: NDArray[np.float64],
        Z1: NDArray[np.float64],
        z2: NDArray[np.float64],
    ) -> None:
        """z2 for one chunk of k rows, through buffers x (k, d), Z1 (k, hidden) and z2 (k,)."""
        flat_x, flat_Z1 = x.reshape(-1), Z1.reshape(-1)  # views: the buffers are contiguous
        m, h = flat_x.size, flat_Z1.size
        np.subtract(chunk.reshape(-1), self.min_tiled[:m], out=flat_x)  # x = (scores - min)
        np.divide(flat_x, self.scale_tiled[:m], out=flat_x)  #              / scale
        np.matmul(x, self.W1T, out=Z1)  # Z1 = x W1^T
        np.add(flat_Z1, self.b1_tiled[:h], out=flat_Z1)  # + b1
        np.maximum(flat_Z1, self.zeros[:h], out=flat_Z1)  # A1 = relu(Z1), in place
        np.matmul(Z1, self.w2, out=z2)  # z2 = A1 w2
        np.add(z2, self.b2, out=z2)  # + b2
