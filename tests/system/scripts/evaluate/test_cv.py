"""scripts/evaluate/cv.py: stratified folds, train-only fitting, sklearn-equal metrics and
the peers' own rules, the table of every model, calibration pooled per repeat."""

from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn import metrics as skm

from model.calibration import brier_score, expected_calibration_error, log_loss
from model.data import Dataset
from model.scaler import MinMaxScaler
from scripts.evaluate import cv
from scripts.evaluate.common import METRICS, Split, fit_scaler, net_scores
from scripts.evaluate.cv import make_folds, stratified_splits, validate
from scripts.evaluate.peers import make_baselines
from scripts.evaluate.records import fold_metrics
from scripts.evaluate.tables import frame, label_models, markdown, summary
from tests.system.scripts.evaluate import FAST, MODELS, SCALED


@pytest.mark.parametrize(("folds", "repeats"), [(3, 2), (10, 1)])
def test_folds_are_stratified_and_partition_each_repeat(
    dataset: Dataset, folds: int, repeats: int
) -> None:
    y = dataset.y
    splits = make_folds(y, folds, repeats, seed=0)
    assert len(splits) == folds * repeats
    for r in range(repeats):
        tests = [te for _, te in splits[r * folds : (r + 1) * folds]]
        np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(y)))
    for train_idx, test_idx in splits:
        assert len(np.intersect1d(train_idx, test_idx)) == 0
        assert len(train_idx) + len(test_idx) == len(y)
        # each fold holds its class's share, to within one row
        for cls in (0, 1):
            share = np.sum(y == cls) / folds
            assert abs(np.sum(y[test_idx] == cls) - share) < 1
    again = make_folds(y, folds, repeats, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))


def test_scaler_and_every_model_see_training_rows_only(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spy on MinMaxScaler.fit and each estimator's fit: each call gets exactly a training fold."""
    seen: dict[str, list[NDArray[Any]]] = {"scaler": [], "net": []}
    scaler_fit = MinMaxScaler.fit

    def spy_scaler_fit(self: MinMaxScaler, X: Any) -> MinMaxScaler:
        seen["scaler"].append(np.asarray(X))
        return scaler_fit(self, X)

    monkeypatch.setattr(MinMaxScaler, "fit", spy_scaler_fit)

    def spy_net_scores(Xs_train: Any, y_train: Any, Xs_test: Any, config: Any) -> Any:
        seen["net"].append(np.asarray(Xs_train))
        return net_scores(Xs_train, y_train, Xs_test, config)

    monkeypatch.setattr(cv, "net_scores", spy_net_scores)  # the name validate calls
    for b in make_baselines(0):
        cls = type(b.estimator)
        seen[b.name] = []

        def spy_fit(self: Any, X: Any, y: Any, _fit: Any = cls.fit, _name: str = b.name) -> Any:
            seen[_name].append(np.asarray(X))
            return _fit(self, X, y)

        monkeypatch.setattr(cls, "fit", spy_fit)

    splits = make_folds(dataset.y, 3, 1, seed=0)
    validate("cv", dataset, stratified_splits(dataset.y, 3, 1, 0), FAST, [0.5])
    for name, calls in seen.items():
        assert len(calls) == len(splits), name
    for k, (train_idx, _) in enumerate(splits):
        X_train = dataset.X[train_idx]
        np.testing.assert_array_equal(seen["scaler"][k], X_train)
        scaled = MinMaxScaler.from_bounds(X_train.min(axis=0), X_train.max(axis=0))
        for name in SCALED:
            np.testing.assert_array_equal(seen[name][k], scaled.transform(X_train))
        np.testing.assert_array_equal(seen["RandomForest"][k], X_train)


def test_fold_metrics_equal_sklearns_and_baselines_apply_their_own_predict(
    dataset: Dataset,
) -> None:
    train_idx, test_idx = make_folds(dataset.y, 3, 1, seed=0)[0]
    X_train, y_train = dataset.X[train_idx], dataset.y[train_idx]
    X_test, y_test = dataset.X[test_idx], dataset.y[test_idx]
    scaler = fit_scaler(X_train)
    Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
    proba = net_scores(Xs_train, y_train, Xs_test, FAST)
    scored = [(proba, t) for t in (0.3, 0.5, 0.8)]
    for b in make_baselines(0):
        b.estimator.fit(Xs_train if b.scaled else X_train, y_train)
        X_eval = Xs_test if b.scaled else X_test
        scores = b.scores(X_eval)
        np.testing.assert_array_equal(scores > b.threshold, b.classifier.predict(X_eval) == 1)
        scored.append((scores, b.threshold))
    for scores, t in scored:
        pred = (scores > t).astype(int)
        m = fold_metrics(y_test, scores, t)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_test, pred), abs=1e-12)
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, scores), abs=1e-12)
        assert m["sensitivity"] == pytest.approx(skm.recall_score(y_test, pred), abs=1e-12)
        assert m["specificity"] == pytest.approx(
            skm.recall_score(y_test, pred, pos_label=0), abs=1e-12
        )


def test_table_has_every_model_and_thresholds_share_one_fit(
    dataset: Dataset, cv3: tuple[list[Split], pd.DataFrame, list[NDArray[np.float64]]]
) -> None:
    splits, df, net_proba = cv3
    table = summary(df, "cv", "fold", METRICS)
    assert list(table.model) == ["TwoLayerNet", "TwoLayerNet", *MODELS[1:]]
    assert list(table.rule[:2]) == ["P > 0.5", "P > 0.3"]
    folds = df[(df.scope == "fold") & (df.metric == "roc_auc") & (df.model == "TwoLayerNet")]
    by_rule = folds.groupby("rule")["value"].apply(list)
    assert by_rule["P > 0.5"] == by_rule["P > 0.3"]  # same probabilities
    assert len(net_proba) == 3
    assert df[df.scope == "fold"].groupby(["model", "rule", "metric"]).size().eq(3).all()
    assert df[df.metric != "log_loss"].value.between(0, 1).all()  # log loss is unbounded
    text = markdown(label_models(table, FAST))
    lines = text.splitlines()
    assert len(lines) == 2 + len(table)
    assert lines[1].startswith("|:---")  # labels left
    assert lines[1].endswith("---:|")  # figures right
    assert all(model in text for model in MODELS)
    assert "TwoLayerNet 9-15-1 (lr 0.07, 200 it, seed 1)" in text
    only_net = frame(validate("cv", dataset, splits, FAST, [0.5], baselines=False)[0])
    assert set(only_net.model) == {"TwoLayerNet"}
    net_05 = df[(df.model == "TwoLayerNet") & (df.rule == "P > 0.5")].reset_index(drop=True)
    pd.testing.assert_frame_equal(only_net, net_05)


def test_calibration_is_pooled_over_each_repeats_out_of_fold_probabilities(
    dataset: Dataset,
) -> None:
    splits = stratified_splits(dataset.y, 3, 2, 0)
    records, net_proba = validate("cv", dataset, splits, FAST, [0.2], baselines=False)
    df = frame(records)
    pooled = df[df.scope == "pooled"].set_index(["repeat", "metric"])["value"]
    for repeat in (0, 1):
        oof = np.full(len(dataset.y), np.nan)
        for s, proba in zip(splits, net_proba, strict=True):
            if s.repeat == repeat:
                oof[s.test] = proba
        assert not np.isnan(oof).any()  # each repeat predicts every row once
        y = dataset.y
        assert pooled[(repeat, "brier")] == pytest.approx(brier_score(y, oof), abs=1e-12)
        assert pooled[(repeat, "log_loss")] == pytest.approx(log_loss(y, oof), abs=1e-12)
        assert pooled[(repeat, "ece")] == pytest.approx(
            expected_calibration_error(y, oof), abs=1e-12
        )
        assert pooled[(repeat, "roc_auc")] == pytest.approx(skm.roc_auc_score(y, oof))
