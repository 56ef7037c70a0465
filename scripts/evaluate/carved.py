"""The fits the conformal and scaling parts share: the network and logistic regression on each
training fold minus its calibration rows."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from model.data import Dataset
from scripts.evaluate.common import (
    DEFAULT_CV_SEED,
    LR_NAME,
    NET,
    Indices,
    NetConfig,
    Progress,
    Record,
    Scored,
    Scores,
    Split,
    fit_scaler,
)
from scripts.evaluate.conformal import conformal_records
from scripts.evaluate.records import Collector, Key
from scripts.evaluate.scaling import scaling_variants


def carve_calibration(
    y_train: NDArray[np.int64], fraction: float, seed: int
) -> tuple[Indices, Indices]:
    """Positions (into the training fold) of the proper training rows and the calibration rows,
    stratified by class; the held-out fold is never touched."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(y_train), dtype=np.int64)
    proper, calib = train_test_split(
        positions, test_size=fraction, stratify=y_train, random_state=seed
    )
    return np.sort(proper), np.sort(calib)


Fits = dict[str, tuple[Scores, Scores]]


def carved_fits(
    data: Dataset, split: Split, config: NetConfig, fraction: float, seed: int
) -> tuple[Fits, NDArray[np.int64], NDArray[np.int64]]:
    """The network and logistic regression fitted on the training fold minus its calibration
    rows: each model's (calibration, test) probabilities, the calibration and the test classes."""
    from sklearn.linear_model import LogisticRegression

    proper_pos, calib_pos = carve_calibration(data.y[split.train], fraction, seed)
    proper, calib = split.train[proper_pos], split.train[calib_pos]
    scaler = fit_scaler(data.X[proper])
    Xp, Xc, Xt = (scaler.transform(data.X[rows]) for rows in (proper, calib, split.test))
    yp = data.y[proper]
    net = config.network().fit(Xp, yp)
    lr = LogisticRegression(max_iter=1000).fit(Xp, yp)
    models = {
        NET: (net.predict_proba(Xc), net.predict_proba(Xt)),
        LR_NAME: (lr.predict_proba(Xc)[:, 1], lr.predict_proba(Xt)[:, 1]),
    }
    return models, data.y[calib], data.y[split.test]


def carved(
    data: Dataset,
    splits: Sequence[Split],
    config: NetConfig,
    threshold: float,
    fraction: float,
    confidences: Sequence[float],
    served_proba: Sequence[Scores] | None,
    conformal: bool = True,
    scaling: bool = True,
    seed: int = DEFAULT_CV_SEED,
    progress: Progress | None = None,
) -> list[Record]:
    """Fit the network and logistic regression on each training fold minus a stratified share
    `fraction` of calibration rows; conformal sets and post-hoc scaling are fitted on those."""
    records: list[Record] = []
    scaled = Collector("scaling", data.y)
    rule = f"P > {threshold:g}"
    for i, s in enumerate(splits):
        models, yc, yt = carved_fits(data, s, config, fraction, seed + i)
        if conformal:
            records += conformal_records(s, models, yc, yt, confidences)
        if scaling:
            served = None if served_proba is None else served_proba[i]
            calib_p, test_p = models[NET]
            for name, proba in scaling_variants(calib_p, yc, test_p, served).items():
                scaled.add(Key("scaling", NET, rule, name), s, Scored(proba, proba, threshold))
        if progress is not None:
            progress("conformal" if conformal else "scaling", i + 1, len(splits))
    return records + scaled.finish()
