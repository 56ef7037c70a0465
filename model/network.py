"""A two-layer network: d inputs -> hidden ReLU units -> 1 sigmoid output.

Trained by full-batch gradient descent on the mean binary cross-entropy. Rows are samples, so
for a batch X of shape (n, d):

    Z1 = X W1^T + b1        A1 = relu(Z1)
    z2 = A1 w2 + b2         p  = sigmoid(z2)
    L  = mean(-y log p - (1 - y) log(1 - p))

and backward, with dL/dz2 = (p - y) / n for a sigmoid output under cross-entropy:

    dW2 = dz2^T A1          db2 = sum(dz2)
    dZ1 = (dz2 w2^T) * [Z1 > 0]
    dW1 = dZ1^T X           db1 = sum(dZ1, rows)
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
ProgressCallback = Callable[[int, float], None]


def sigmoid(z: Array) -> Array:
    # exp(-log(1 + e^-z)) never overflows, unlike 1 / (1 + exp(-z)) for z << 0.
    return np.exp(-np.logaddexp(0.0, -z))


def bce_from_logits(z: Array, y: Array) -> float:
    """Mean binary cross-entropy of sigmoid(z) against y, finite even when p saturates."""
    # -y log p - (1 - y) log(1 - p) == log(1 + e^z) - y z
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass
class Gradients:
    W1: Array
    b1: Array
    W2: Array
    b2: Array


class TwoLayerNet:
    """Binary classifier with one hidden ReLU layer; `predict_proba` gives P(y = 1).

    Initialization follows the article: a legacy NumPy RNG seeded with `seed`, then
    W1 = randn(hidden, d) / sqrt(d), b1 = 0, W2 = randn(1, hidden) / sqrt(hidden), b2 = 0.
    """

    def __init__(
        self,
        hidden: int = 15,
        lr: float = 0.01,
        iterations: int = 15000,
        seed: int = 1,
        log_every: int = 100,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.iterations = iterations
        self.seed = seed
        self.log_every = log_every

    # -- parameters ---------------------------------------------------------------------------
    def init_params(self, n_features: int) -> Self:
        rng = np.random.RandomState(self.seed)  # same stream as the article's np.random.seed(1)
        self.W1_: Array = rng.randn(self.hidden, n_features) / np.sqrt(n_features)
        self.b1_: Array = np.zeros(self.hidden)
        self.W2_: Array = rng.randn(1, self.hidden) / np.sqrt(self.hidden)
        self.b2_: Array = np.zeros(1)
        self.n_features_in_ = n_features
        return self

    def set_params(self, W1: ArrayLike, b1: ArrayLike, W2: ArrayLike, b2: ArrayLike) -> Self:
        W1, b1 = np.asarray(W1, dtype=np.float64), np.asarray(b1, dtype=np.float64)
        W2, b2 = np.asarray(W2, dtype=np.float64), np.asarray(b2, dtype=np.float64)
        hidden, n_features = W1.shape
        expected = {"b1": (hidden,), "W2": (1, hidden), "b2": (1,)}
        for name, arr in (("b1", b1), ("W2", W2), ("b2", b2)):
            if arr.shape != expected[name]:
                raise ValueError(f"{name} has shape {arr.shape}, expected {expected[name]}")
        self.hidden = hidden
        self.W1_, self.b1_, self.W2_, self.b2_ = W1, b1, W2, b2
        self.n_features_in_ = n_features
        return self

    # -- the math -----------------------------------------------------------------------------
    def forward(self, X: Array) -> tuple[Array, Array]:
        """Hidden pre-activations Z1 (n, hidden) and output logits z2 (n,)."""
        Z1 = X @ self.W1_.T + self.b1_
        z2 = np.maximum(Z1, 0.0) @ self.W2_[0] + self.b2_[0]
        return Z1, z2

    def loss_and_gradients(self, X: Array, y: Array) -> tuple[float, Gradients]:
        Z1, z2 = self.forward(X)
        A1 = np.maximum(Z1, 0.0)
        dz2 = (sigmoid(z2) - y) / len(y)
        dZ1 = np.outer(dz2, self.W2_[0]) * (Z1 > 0)
        grads = Gradients(
            W1=dZ1.T @ X,
            b1=dZ1.sum(axis=0),
            W2=(dz2 @ A1)[np.newaxis, :],
            b2=np.array([dz2.sum()]),
        )
        return bce_from_logits(z2, y), grads

    def step(self, grads: Gradients) -> None:
        self.W1_ -= self.lr * grads.W1
        self.b1_ -= self.lr * grads.b1
        self.W2_ -= self.lr * grads.W2
        self.b2_ -= self.lr * grads.b2

    # -- estimator API --------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike, progress: ProgressCallback | None = None) -> Self:
        """Full-batch gradient descent from the seeded initialization."""
        X, y = _check_X(X), _check_y(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.init_params(X.shape[1])
        self.loss_curve_: list[tuple[int, float]] = []
        for i in range(self.iterations):
            loss, grads = self.loss_and_gradients(X, y)
            if i % self.log_every == 0 or i == self.iterations - 1:
                self.loss_curve_.append((i, loss))
                if progress is not None:
                    progress(i, loss)
            self.step(grads)
        return self

    def predict_proba(self, X: ArrayLike) -> Array:
        """P(malignant) for each row of X, shape (n,)."""
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        return sigmoid(self.forward(X)[1])


def _check_X(X: ArrayLike) -> Array:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    return X


def _check_y(y: ArrayLike) -> Array:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must be a 1-D array of 0 and 1")
    return y
