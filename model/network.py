"""A two-layer network: d inputs -> hidden ReLU units -> 1 sigmoid output.

Trained by full-batch gradient descent on the mean binary cross-entropy plus an optional L2
penalty of strength lambda (`weight_decay`, 0 by default) on the weights, not the biases. Rows
are samples, so for a batch X of shape (n, d):

    Z1 = X W1^T + b1        A1 = relu(Z1)
    z2 = A1 w2 + b2         p  = sigmoid(z2)
    L  = mean(-y log p - (1 - y) log(1 - p)) + (lambda / 2) (|W1|^2 + |w2|^2)

and backward, with dL/dz2 = (p - y) / n for a sigmoid output under cross-entropy:

    dW2 = dz2^T A1 + lambda W2      db2 = sum(dz2)
    dZ1 = (dz2 w2^T) * [Z1 > 0]
    dW1 = dZ1^T X + lambda W1       db1 = sum(dZ1, rows)

(|.|^2 is the sum of squares. Biases are not penalised: shrinking them towards 0 only moves the
decision boundary, it does not smooth it.) With `early_stopping`, a stratified share
`validation_fraction` of the training rows is held out; every `validation_every` iterations the
unpenalised loss on those rows is measured, training stops after `n_iter_no_change` checks
without an improvement of at least `tol`, and the parameters of the best check are kept
(`best_iteration_`), as scikit-learn's MLPClassifier does.

`forward` is the first block as written. Training (`loss_and_gradients`, `fit`) runs both blocks
in `_Trainer`, which computes the same quantities in fewer, allocation-free NumPy calls: at 500
rows each call costs about as much in overhead as in arithmetic. See `_Trainer` for the layout.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.defaults import SERVED

Array = NDArray[np.float64]
ProgressCallback = Callable[[int, float], None]


def sigmoid(z: Array) -> Array:
    # exp(-log(1 + e^-z)) never overflows, unlike 1 / (1 + exp(-z)) for z << 0.
    return np.exp(-np.logaddexp(0.0, -z))


def logistic(z: Array, out: Array | None = None) -> Array:
    """1 / (1 + e^-z) into `out` (into z itself, overwritten, when None): `sigmoid` at a fifth
    of its cost (no logaddexp), for the batch scorer and the explanations. e^-z overflows to
    inf only where z < -709, and 1 / inf = 0 is then the sigmoid to within 1e-308 (the warning
    is silenced); elsewhere the two agree to 2.3e-16 in absolute terms, this one the closer to
    the exact value (model/scoring/batch.py)."""
    out = z if out is None else out
    np.negative(z, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


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
    `weight_decay` and `early_stopping` (see the module docstring) are off by default, and then
    training is exactly the unregularised full-batch descent. The early-stopping split draws
    from its own generator seeded with `seed`, so it leaves the initialization unchanged.

    Learned state: W1_, b1_, W2_, b2_, n_features_in_, loss_curve_ (iteration, training
    objective) and n_iter_ (iterations run); with early stopping also best_iteration_,
    best_validation_loss_ and validation_curve_ (iteration, validation loss).
    """

    def __init__(
        self,
        hidden: int = SERVED.hidden,
        lr: float = SERVED.lr,
        iterations: int = SERVED.iterations,
        seed: int = SERVED.seed,
        log_every: int = 100,
        weight_decay: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        validation_every: int = 100,
        tol: float = 1e-4,
    ) -> None:
        if not (weight_decay >= 0.0 and np.isfinite(weight_decay)):
            raise ValueError("weight_decay must be a finite number >= 0")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError("validation_fraction must lie strictly between 0 and 1")
        if n_iter_no_change < 1 or validation_every < 1:
            raise ValueError("n_iter_no_change and validation_every must be at least 1")
        self.hidden = hidden
        self.lr = lr
        self.iterations = iterations
        self.seed = seed
        self.log_every = log_every
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.validation_every = validation_every
        self.tol = tol

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
        """L and its gradients at the current parameters (the computation `fit` repeats),
        weight decay included."""
        trainer = _Trainer(self, _check_X(X), _check_y(y), lr=1.0)
        with np.errstate(over="ignore"):
            trainer.backprop()
        return trainer.loss(), trainer.gradients()

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
        monitor = None
        if self.early_stopping:
            train_idx, valid_idx = self._validation_split(y)
            monitor = _EarlyStopping(self, X[valid_idx], y[valid_idx])
            X, y = X[train_idx], y[train_idx]
        trainer = _Trainer(self, X, y, self.lr)
        last = self.iterations - 1
        with np.errstate(over="ignore"):
            for i in range(self.iterations):
                trainer.backprop()
                if i % self.log_every == 0 or i == last:
                    loss = trainer.loss()
                    self.loss_curve_.append((i, loss))
                    if progress is not None:
                        progress(i, loss)
                if (
                    monitor is not None
                    and i % self.validation_every == 0
                    and monitor.check(i, trainer) >= self.n_iter_no_change
                ):
                    break
                trainer.step()
        self.n_iter_ = i + 1
        if monitor is None:
            self.set_params(*trainer.params())
        else:  # the parameters of the best check, not of the last step
            assert monitor.best_params is not None  # iteration 0 is always checked
            self.set_params(*monitor.best_params)
            self.best_iteration_ = monitor.best_iteration
            self.best_validation_loss_ = monitor.best_loss
            self.validation_curve_ = monitor.curve
        return self

    def _validation_split(self, y: Array) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Stratified (train, validation) row indices; at least one validation row per class."""
        rng = np.random.default_rng(self.seed)
        train: list[NDArray[np.intp]] = []
        valid: list[NDArray[np.intp]] = []
        for cls in (0.0, 1.0):
            rows = rng.permutation(np.flatnonzero(y == cls))
            if len(rows) < 2:
                raise ValueError("early stopping needs at least 2 rows of each class")
            k = min(max(1, round(self.validation_fraction * len(rows))), len(rows) - 1)
            valid.append(rows[:k])
            train.append(rows[k:])
        return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))

    def predict_proba(self, X: ArrayLike) -> Array:
        """P(malignant) for each row of X, shape (n,)."""
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        return sigmoid(self.forward(X)[1])


class _Trainer:
    """Full-batch gradient descent on one (X, y), with every array allocated once.

    The module docstring's equations, arranged so that an iteration is 13 NumPy calls:

    - Samples are columns: hidden activations are (hidden, n), so elementwise steps run along
      contiguous rows of n.
    - Biases are weights on an input fixed at 1. A row of ones under X^T and under A1 gives
      [W1 b1] [X^T; 1] = W1 X^T + b1 and [w2 b2] [A1; 1] = A1 w2 + b2, and the same products
      in the backward pass give db1 and db2 along with dW1 and dW2.
    - w2 is factored out of dZ1: dW1 = dZ1^T X = w2 * (([Z1 > 0] * dz2^T) X), so it scales the
      small (hidden, d + 1) result instead of the (hidden, n) one.
    - With s = 2y - 1 (+1 or -1), p - y = -s / (1 + e^(s z2)) for y in {0, 1}: dz2 needs no p
      and no subtraction. e^(s z2) overflows to inf only where dz2 is 0 anyway, so callers run
      `backprop` under np.errstate(over="ignore").
    - All parameters are views into one vector theta and all gradients into one vector, which
      carries the learning rate from dz2 on: it holds lr * dL/dtheta, and a step subtracts it.
    - Weight decay adds lr * lambda * theta on the weights' entries: `decay` holds lr * lambda
      there and 0 on the biases' entries, so it is two more calls, and none when lambda is 0.
    """

    __slots__ = (
        "A1",
        "A1_1",
        "W1b",
        "X1",
        "X1T",
        "dW1b",
        "decay",
        "decay_term",
        "dw2b",
        "dz2",
        "e",
        "lr",
        "lr_grad",
        "masked_dz2_X1",
        "minus_lr_s_over_n",
        "s",
        "theta",
        "w2_column",
        "w2b",
        "weight_decay",
        "y",
        "z2",
    )

    def __init__(self, net: "TwoLayerNet", X: Array, y: Array, lr: float) -> None:
        n, d = X.shape
        h = net.hidden
        k = h * (d + 1)
        self.theta = np.concatenate(
            [np.column_stack([net.W1_, net.b1_]).ravel(), net.W2_[0], net.b2_]
        )
        self.W1b = self.theta[:k].reshape(h, d + 1)  # [W1 b1]
        self.w2b = self.theta[k:]  # [w2 b2]
        self.w2_column = self.theta[k : k + h, np.newaxis]
        self.lr_grad = np.empty_like(self.theta)
        self.dW1b = self.lr_grad[:k].reshape(h, d + 1)  # lr [dW1 db1]
        self.dw2b = self.lr_grad[k:]  # lr [dW2 db2]
        self.X1T = np.ascontiguousarray(np.vstack([X.T, np.ones(n)]))  # [X^T; 1]
        self.X1 = self.X1T.T  # [X 1]
        self.y, self.lr = y, lr
        self.s = 2.0 * y - 1.0
        self.minus_lr_s_over_n = -lr * self.s / n
        self.A1_1 = np.ones((h + 1, n))  # [A1; 1]: backprop rewrites all but the row of ones
        self.A1 = self.A1_1[:h]
        self.z2, self.e, self.dz2 = np.empty(n), np.empty(n), np.empty(n)
        self.masked_dz2_X1 = np.empty((h, d + 1))
        self.weight_decay = net.weight_decay
        self.decay = np.zeros_like(self.theta)  # lr * lambda on weights, 0 on biases
        self.decay[:k].reshape(h, d + 1)[:, :-1] = lr * net.weight_decay
        self.decay[k : k + h] = lr * net.weight_decay
        self.decay_term = np.empty_like(self.theta)

    def backprop(self) -> None:
        """Forward at theta, then lr * dL/dtheta; z2 keeps the logits for `loss`."""
        A1, A1_1, z2, e, dz2 = self.A1, self.A1_1, self.z2, self.e, self.dz2
        # forward
        np.matmul(self.W1b, self.X1T, out=A1)  # Z1 = [W1 b1] [X^T; 1]
        np.maximum(A1, 0.0, out=A1)  # A1 = relu(Z1)
        np.dot(self.w2b, A1_1, out=z2)  # z2 = [w2 b2] [A1; 1]
        # backward, every gradient times lr
        np.multiply(self.s, z2, out=e)  # dz2 = lr (p - y) / n
        np.exp(e, out=e)  #     = -lr s / n / (1 + e^(s z2))
        np.add(e, 1.0, out=e)
        np.divide(self.minus_lr_s_over_n, e, out=dz2)
        np.dot(A1_1, dz2, out=self.dw2b)  # [dW2 db2] = [A1; 1] dz2
        np.greater(A1, 0.0, out=A1)  # [Z1 > 0], over A1 (no longer needed)
        np.multiply(A1, dz2, out=A1)  # [Z1 > 0] * dz2^T
        np.dot(A1, self.X1, out=self.masked_dz2_X1)  # ([Z1 > 0] * dz2^T) [X 1]
        np.multiply(self.w2_column, self.masked_dz2_X1, out=self.dW1b)  # [dW1 db1] = w2 * that
        if self.weight_decay:  # + lr lambda [W1 0; w2 0]
            np.multiply(self.decay, self.theta, out=self.decay_term)
            np.add(self.lr_grad, self.decay_term, out=self.lr_grad)

    def step(self) -> None:
        np.subtract(self.theta, self.lr_grad, out=self.theta)  # theta -= lr * dL/dtheta

    def loss(self) -> float:
        """L at theta as of the last `backprop`, from its logits, plus the L2 penalty."""
        loss = bce_from_logits(self.z2, self.y)
        if self.weight_decay:
            weights = np.concatenate([self.W1b[:, :-1].ravel(), self.w2b[:-1]])
            loss += 0.5 * self.weight_decay * float(weights @ weights)
        return loss

    def logits(self, X1T: Array) -> Array:
        """z2 at theta for other rows, given as [X^T; 1] (early stopping's validation rows)."""
        A1 = np.maximum(self.W1b @ X1T, 0.0)
        return np.asarray(A1.T @ self.w2b[:-1] + self.w2b[-1], dtype=np.float64)

    def gradients(self) -> Gradients:
        """dL/dtheta as new arrays (for a trainer made with lr = 1)."""
        assert self.lr == 1.0
        return Gradients(
            W1=self.dW1b[:, :-1].copy(),
            b1=self.dW1b[:, -1].copy(),
            W2=self.dw2b[np.newaxis, :-1].copy(),
            b2=self.dw2b[-1:].copy(),
        )

    def params(self) -> tuple[Array, Array, Array, Array]:
        """W1, b1, W2, b2 as new arrays."""
        return (
            self.W1b[:, :-1].copy(),
            self.W1b[:, -1].copy(),
            self.w2b[np.newaxis, :-1].copy(),
            self.w2b[-1:].copy(),
        )


class _EarlyStopping:
    """The validation rows' loss at each check, and the best parameters seen so far."""

    def __init__(self, net: TwoLayerNet, X: Array, y: Array) -> None:
        self.X1T = np.vstack([X.T, np.ones(len(X))])
        self.y = y
        self.tol = net.tol
        self.best_loss = math.inf
        self.best_iteration = 0
        self.best_params: tuple[Array, Array, Array, Array] | None = None
        self.curve: list[tuple[int, float]] = []
        self.checks_without_gain = 0

    def check(self, i: int, trainer: _Trainer) -> int:
        """Record the loss at iteration i; answer how many checks in a row brought no gain."""
        loss = bce_from_logits(trainer.logits(self.X1T), self.y)
        self.curve.append((i, loss))
        if loss < self.best_loss - self.tol or self.best_params is None:
            self.checks_without_gain = 0
        else:
            self.checks_without_gain += 1
        if loss < self.best_loss:
            self.best_loss, self.best_iteration = loss, i
            self.best_params = trainer.params()
        return self.checks_without_gain


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
