"""Min-max scaling of the nine scores to [0, 1], fitted on training rows only."""

from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray


class MinMaxScaler:
    """x' = (x - min) / (max - min), per feature.

    A feature whose training range is zero is divided by 1 instead, so it maps to 0 rather than
    to NaN.
    """

    def __init__(self) -> None:
        self.min_: NDArray[np.float64] | None = None
        self.max_: NDArray[np.float64] | None = None

    def fit(self, X: ArrayLike) -> Self:
        X = _as_2d(X)
        self.min_ = X.min(axis=0)
        self.max_ = X.max(axis=0)
        return self

    @classmethod
    def from_bounds(cls, min_: ArrayLike, max_: ArrayLike) -> Self:
        scaler = cls()
        scaler.min_ = np.asarray(min_, dtype=np.float64)
        scaler.max_ = np.asarray(max_, dtype=np.float64)
        if scaler.min_.shape != scaler.max_.shape or scaler.min_.ndim != 1:
            raise ValueError("scaler min and max must be 1-D arrays of the same length")
        if not np.all(scaler.min_ <= scaler.max_):
            raise ValueError("scaler min must not exceed max")
        return scaler

    @property
    def scale_(self) -> NDArray[np.float64]:
        lo, hi = self._bounds()
        span = hi - lo
        return np.where(span > 0, span, 1.0)

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        lo, _ = self._bounds()
        X = _as_2d(X)
        if X.shape[1] != lo.shape[0]:
            raise ValueError(f"expected {lo.shape[0]} feature columns, got {X.shape[1]}")
        return (X - lo) / self.scale_

    def _bounds(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self.min_ is None or self.max_ is None:
            raise RuntimeError("MinMaxScaler is not fitted")
        return self.min_, self.max_


def _as_2d(X: ArrayLike) -> NDArray[np.float64]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D array (n_samples, n_features), got {X.shape}")
    return X
