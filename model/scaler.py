"""Min-max scaling of the nine scores to [0, 1], fitted on training rows only."""

from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray


class MinMaxScaler:
    """x' = (x - min) / (max - min), per feature.

    A feature whose training range is zero is divided by 1 instead, so it maps to 0 rather than
    to NaN. The divisor, `scale_`, is computed once when the bounds are set (by `fit` or
    `from_bounds`), not on every `transform`: the service transforms one row per request.
    """

    def __init__(self) -> None:
        self.min_: NDArray[np.float64] | None = None
        self.max_: NDArray[np.float64] | None = None
        self.scale_: NDArray[np.float64] | None = None

    def fit(self, X: ArrayLike) -> Self:
        X = _as_2d(X)
        self._set_bounds(X.min(axis=0), X.max(axis=0))
        return self

    @classmethod
    def from_bounds(cls, min_: ArrayLike, max_: ArrayLike) -> Self:
        lo = np.asarray(min_, dtype=np.float64)
        hi = np.asarray(max_, dtype=np.float64)
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ValueError("scaler min and max must be 1-D arrays of the same length")
        if not np.all(lo <= hi):
            raise ValueError("scaler min must not exceed max")
        scaler = cls()
        scaler._set_bounds(lo, hi)
        return scaler

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        if self.min_ is None or self.scale_ is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        X = _as_2d(X)
        if X.shape[1] != self.min_.shape[0]:
            raise ValueError(f"expected {self.min_.shape[0]} feature columns, got {X.shape[1]}")
        scaled = X - self.min_  # a new array, so dividing in place leaves X alone
        scaled /= self.scale_
        return scaled

    def _set_bounds(self, lo: NDArray[np.float64], hi: NDArray[np.float64]) -> None:
        span = hi - lo
        self.min_, self.max_, self.scale_ = lo, hi, np.where(span > 0, span, 1.0)


def _as_2d(X: ArrayLike) -> NDArray[np.float64]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D array (n_samples, n_features), got {X.shape}")
    return X
