"""scripts/evaluate.py: folds (stratified, grouped, temporal), train-only fitting, sklearn-equal
metrics, pooled calibration, the corrected t-test, conformal coverage, post-hoc scaling, the
nested choice of regularisation, the tidy frame and the CLI."""

import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import stats
from sklearn import metrics as skm

from model.calibration import brier_score, expected_calibration_error, log_loss
from model.conformal import ConformalClassifier
from model.data import Dataset
from model.defaults import SERVED
from model.scaler import MinMaxScaler
from scripts import evaluate as ev

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "evaluate.py"
FAST = ev.NetConfig(lr=0.07, iterations=200, hidden=15, seed=1)
MODELS = ("TwoLayerNet", "LogisticRegression", "SVC (RBF)", "RandomForest", "kNN (k = 5)")
SCALED = ("net", "LogisticRegression", "SVC (RBF)", "kNN (k = 5)")


@pytest.mark.parametrize(("folds", "repeats"), [(3, 2), (10, 1)])
def test_folds_are_stratified_and_partition_each_repeat(
    dataset: Dataset, folds: int, repeats: int
) -> None:
    y = dataset.y
    splits = ev.make_folds(y, folds, repeats, seed=0)
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
    again = ev.make_folds(y, folds, repeats, seed=0)
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
    net_scores = ev.net_scores

    def spy_net_scores(Xs_train: Any, y_train: Any, Xs_test: Any, config: Any) -> Any:
        seen["net"].append(np.asarray(Xs_train))
        return net_scores(Xs_train, y_train, Xs_test, config)

    monkeypatch.setattr(ev, "net_scores", spy_net_scores)
    for b in ev.make_baselines(0):
        cls = type(b.estimator)
        seen[b.name] = []

        def spy_fit(self: Any, X: Any, y: Any, _fit: Any = cls.fit, _name: str = b.name) -> Any:
            seen[_name].append(np.asarray(X))
            return _fit(self, X, y)

        monkeypatch.setattr(cls, "fit", spy_fit)

    splits = ev.make_folds(dataset.y, 3, 1, seed=0)
    ev.validate("cv", dataset, ev.stratified_splits(dataset.y, 3, 1, 0), FAST, [0.5])
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
    train_idx, test_idx = ev.make_folds(dataset.y, 3, 1, seed=0)[0]
    X_train, y_train = dataset.X[train_idx], dataset.y[train_idx]
    X_test, y_test = dataset.X[test_idx], dataset.y[test_idx]
    scaler = ev.fit_scaler(X_train)
    Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
    proba = ev.net_scores(Xs_train, y_train, Xs_test, FAST)
    scored = [(proba, t) for t in (0.3, 0.5, 0.8)]
    for b in ev.make_baselines(0):
        b.estimator.fit(Xs_train if b.scaled else X_train, y_train)
        X_eval = Xs_test if b.scaled else X_test
        scores = b.scores(X_eval)
        np.testing.assert_array_equal(scores > b.threshold, b.classifier.predict(X_eval) == 1)
        scored.append((scores, b.threshold))
    for scores, t in scored:
        pred = (scores > t).astype(int)
        m = ev.fold_metrics(y_test, scores, t)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_test, pred), abs=1e-12)
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, scores), abs=1e-12)
        assert m["sensitivity"] == pytest.approx(skm.recall_score(y_test, pred), abs=1e-12)
        assert m["specificity"] == pytest.approx(
            skm.recall_score(y_test, pred, pos_label=0), abs=1e-12
        )


@pytest.fixture(scope="module")
def cv3(dataset: Dataset) -> tuple[list[ev.Split], "pd.DataFrame", list[NDArray[np.float64]]]:
    """One fast 3-fold run of every model, our network at 0.5 and 0.3, shared by the tests."""
    splits = ev.stratified_splits(dataset.y, 3, 1, 0)
    records, net_proba = ev.validate("cv", dataset, splits, FAST, [0.5, 0.3])
    return splits, ev.frame(records), net_proba


def test_table_has_every_model_and_thresholds_share_one_fit(
    dataset: Dataset, cv3: tuple[list[ev.Split], pd.DataFrame, list[NDArray[np.float64]]]
) -> None:
    splits, df, net_proba = cv3
    table = ev.summary(df, "cv", "fold", ev.METRICS)
    assert list(table.model) == ["TwoLayerNet", "TwoLayerNet", *MODELS[1:]]
    assert list(table.rule[:2]) == ["P > 0.5", "P > 0.3"]
    folds = df[(df.scope == "fold") & (df.metric == "roc_auc") & (df.model == "TwoLayerNet")]
    by_rule = folds.groupby("rule")["value"].apply(list)
    assert by_rule["P > 0.5"] == by_rule["P > 0.3"]  # same probabilities
    assert len(net_proba) == 3
    assert df[df.scope == "fold"].groupby(["model", "rule", "metric"]).size().eq(3).all()
    assert df[df.metric != "log_loss"].value.between(0, 1).all()  # log loss is unbounded
    text = ev.markdown(ev.label_models(table, FAST))
    lines = text.splitlines()
    assert len(lines) == 2 + len(table)
    assert lines[1].startswith("|:---")  # labels left
    assert lines[1].endswith("---:|")  # figures right
    assert all(model in text for model in MODELS)
    assert "TwoLayerNet 9-15-1 (lr 0.07, 200 it, seed 1)" in text
    only_net = ev.frame(ev.validate("cv", dataset, splits, FAST, [0.5], baselines=False)[0])
    assert set(only_net.model) == {"TwoLayerNet"}
    net_05 = df[(df.model == "TwoLayerNet") & (df.rule == "P > 0.5")].reset_index(drop=True)
    pd.testing.assert_frame_equal(only_net, net_05)


def test_calibration_is_pooled_over_each_repeats_out_of_fold_probabilities(
    dataset: Dataset,
) -> None:
    splits = ev.stratified_splits(dataset.y, 3, 2, 0)
    records, net_proba = ev.validate("cv", dataset, splits, FAST, [0.2], baselines=False)
    df = ev.frame(records)
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


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25])
def test_corrected_ttest_is_the_nadeau_bengio_statistic(ratio: float) -> None:
    diffs = np.random.default_rng(3).normal(0.004, 0.01, size=50)
    mean, p = ev.corrected_ttest(diffs, ratio)
    assert mean == pytest.approx(diffs.mean(), abs=1e-15)
    t = diffs.mean() / math.sqrt((1 / 50 + ratio) * diffs.var(ddof=1))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df=49), rel=1e-12)
    plain = stats.ttest_1samp(diffs, 0.0).pvalue
    if ratio == 0.0:  # without the correction it is the ordinary one-sample t-test
        assert p == pytest.approx(plain, rel=1e-10)
    else:  # the correction widens the variance: larger p for the same differences
        assert p > plain


@pytest.mark.parametrize(
    ("diffs", "expected"),
    [([0.0, 0.0, 0.0], (0.0, 1.0)), ([0.01, 0.01], (0.01, 0.0)), ([0.02], (0.02, math.nan))],
)
def test_corrected_ttest_edge_cases(diffs: list[float], expected: tuple[float, float]) -> None:
    mean, p = ev.corrected_ttest(diffs, 0.1)
    assert mean == pytest.approx(expected[0])
    assert (math.isnan(p) and math.isnan(expected[1])) or p == expected[1]


def test_ttest_table_pairs_folds_and_names_the_noise(
    cv3: tuple[list[ev.Split], pd.DataFrame, list[NDArray[np.float64]]],
) -> None:
    splits, df, _ = cv3
    ref = ("TwoLayerNet", "P > 0.5", "")
    ratio = ev.test_train_ratio(splits)
    assert ratio == pytest.approx(0.5, abs=0.01)
    table = ev.ttest_table(df, "cv", ref, ratio)
    assert list(table.model) == ["TwoLayerNet", *MODELS[1:]]  # the net at 0.3 too
    assert list(table.rule[:1]) == ["P > 0.3"]
    fold = df[(df.scope == "fold") & (df.metric == "accuracy")]
    net = fold[(fold.model == "TwoLayerNet") & (fold.rule == "P > 0.5")].value.to_numpy()
    knn = fold[fold.model == "kNN (k = 5)"].value.to_numpy()
    mean, p = ev.corrected_ttest(knn - net, ratio)
    assert table.set_index("model").loc["kNN (k = 5)", "accuracy"] == f"{mean:+.4f} (p {p:.2f})"
    sentence = ev.noise_sentence(df, "cv", ref, ratio)
    assert sentence.endswith("noise.") or "noise (corrected p > 0.05)" in sentence


def test_grouped_folds_keep_identical_score_vectors_together(dataset: Dataset) -> None:
    groups = ev.duplicate_groups(dataset.X)
    assert len(np.unique(groups)) == 449  # distinct score vectors among the 683 rows
    splits = ev.grouped_splits(dataset, 5, 2, 0)
    assert len(splits) == 10
    for r in (0, 1):
        tests = [s.test for s in splits if s.repeat == r]
        np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(683))
    for s in splits:
        assert not np.isin(groups[s.test], groups[s.train]).any()
        assert abs(dataset.y[s.test].mean() - dataset.y.mean()) < 0.05  # still stratified
    assert ev.twin_share(dataset, splits) == 0.0
    # ordinary stratified folds put an identical twin in training for about 40% of rows
    stratified = ev.stratified_splits(dataset.y, 10, 5, 0)
    assert 0.35 < ev.twin_share(dataset, stratified) < 0.45


def test_temporal_splits_follow_the_uci_collection_groups(dataset: Dataset) -> None:
    group = ev.collection_groups(dataset)
    counts = np.bincount(group, minlength=8).tolist()
    assert counts == [353, 69, 31, 17, 48, 49, 31, 85]  # the UCI sizes minus '?' rows
    assert sum(ev.TEMPORAL_GROUPS) == dataset.n_rows_read == 699
    splits = ev.temporal_splits(dataset)
    assert [s.fold for s in splits] == list(range(1, 8))
    lines = dataset.line_numbers
    for s in splits:
        assert lines[s.train].max() < lines[s.test].min()  # never train on the future
        np.testing.assert_array_equal(s.train, np.flatnonzero(group < s.fold))
        np.testing.assert_array_equal(s.test, np.flatnonzero(group == s.fold))


def test_temporal_part_refuses_a_file_without_the_uci_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_path: Path
) -> None:
    short = tmp_path / "short.csv"
    short.write_text("".join(data_path.read_text().splitlines(keepends=True)[:600]))
    assert ev.main(["--data", str(short), "--parts", "temporal", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "evaluate.py: error: --parts temporal: the temporal groups need the UCI file's 699 "
        "rows, this file has 600\n"
    )


def test_calibration_rows_come_from_the_training_fold_only(dataset: Dataset) -> None:
    s = ev.stratified_splits(dataset.y, 10, 1, 0)[0]
    proper, calib = ev.carve_calibration(dataset.y[s.train], 0.25, seed=0)
    assert len(np.intersect1d(proper, calib)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([proper, calib])), np.arange(len(s.train)))
    assert len(calib) == math.ceil(0.25 * len(s.train))
    rate = dataset.y[s.train].mean()
    assert abs(dataset.y[s.train][calib].mean() - rate) < 0.01
    assert not np.isin(s.train[calib], s.test).any()


def test_conformal_part_covers_each_class_and_shares_add_up(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = ev.stratified_splits(dataset.y, 5, 1, 0)
    fitted: list[NDArray[Any]] = []
    fit = ConformalClassifier.fit

    def spy(self: Any, proba: Any, y: Any) -> Any:
        fitted.append(np.asarray(y))
        return fit(self, proba, y)

    monkeypatch.setattr(ConformalClassifier, "fit", spy)
    records = ev.carved(dataset, splits, FAST, 0.2, 0.25, (0.9, 0.95), None, scaling=False)
    df = ev.frame(records)
    assert len(fitted) == 5 * 2 * 2  # folds x models x (class-conditional, marginal)
    assert all(len(y) == math.ceil(0.25 * len(splits[0].train)) for y in fitted)
    wide = df.pivot_table(
        index=["model", "variant", "confidence", "fold"], columns="metric", values="value"
    )
    np.testing.assert_allclose(wide["singleton"] + wide["two_class"] + wide["empty"], 1.0)
    assert set(wide.index.get_level_values("model")) == {"TwoLayerNet", "LogisticRegression"}
    text = ev.report_conformal(df, ev.Run(dataset, FAST, 0.2, 5, 1, 0))
    for conf in ("0.9", "0.95"):
        assert f"| class-conditional | {conf}" in text.replace("  ", "").replace("| ", "| ")
    mondrian = wide.xs("class-conditional", level="variant")
    for key, g in mondrian.groupby(level=["model", "confidence"]):
        _, confidence = cast("tuple[str, float]", key)
        for cls in ("coverage_benign", "coverage_malignant"):
            assert ev.coverage_holds(g[cls], confidence), (confidence, cls)


def test_coverage_check_uses_three_standard_errors() -> None:
    values = pd.Series([0.90, 0.92, 0.94, 0.96])  # mean 0.93, se 0.01291
    assert ev.coverage_holds(values, 0.95 - 0.0001)  # within 3 SE below
    assert not ev.coverage_holds(values, 0.975)  # more than 3 SE below


@pytest.mark.parametrize("sharpen", [0.5, 3.0])
def test_platt_and_temperature_undo_a_known_distortion(sharpen: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(np.int64)
    distorted = 1 / (1 + np.exp(-sharpen * z))  # over- or under-confident
    truth = 1 / (1 + np.exp(-z))
    for fit in (ev.platt, ev.temperature):
        fixed = fit(distorted, y)(distorted)
        assert np.max(np.abs(fixed - truth)) < 0.03, fit.__name__
        assert np.all(np.diff(fixed[np.argsort(distorted)]) >= -1e-12)  # monotone: AUC kept


def test_scaling_part_compares_against_the_served_fits(dataset: Dataset) -> None:
    splits = ev.stratified_splits(dataset.y, 3, 1, 0)
    _, served = ev.validate("cv", dataset, splits, FAST, [0.2], baselines=False)
    df = ev.frame(ev.carved(dataset, splits, FAST, 0.2, 0.25, (0.9,), served, conformal=False))
    assert set(df.variant) == {
        "none (whole training fold)",
        "fewer training rows, unscaled",
        "Platt",
        "temperature",
    }
    auc = df[(df.scope == "fold") & (df.metric == "roc_auc")].pivot_table(
        index="fold", columns="variant", values="value"
    )
    # a monotone rescaling of the same probabilities ranks rows the same
    np.testing.assert_allclose(auc["temperature"], auc["fewer training rows, unscaled"])
    verdict = ev.scaling_verdict(df)
    assert verdict.count("adopt") == 2


def test_nested_choice_scores_the_candidate_its_inner_cv_picked(dataset: Dataset) -> None:
    splits = ev.stratified_splits(dataset.y, 3, 1, 0)
    candidates = [FAST, replace(FAST, weight_decay=0.05), replace(FAST, early_stopping=True)]
    df = ev.frame(ev.regularize(dataset, splits, candidates, 0.2, 2, None))
    chosen = df[df.metric == "chosen"]
    assert len(chosen) == 3  # one pick per outer fold
    auc = df[(df.scope == "fold") & (df.metric == "roc_auc")].set_index(["fold", "variant"])
    for fold, pick in zip(chosen.fold, chosen.variant, strict=True):
        assert auc.loc[(fold, "nested choice"), "value"] == auc.loc[(fold, pick), "value"]
        losses = [ev.inner_log_loss(dataset, splits[fold].train, c, 2, 0) for c in candidates]
        assert pick == candidates[int(np.argmin(losses))].variant
    assert set(df.variant) >= {"none (served)", "weight decay 0.05", "early stopping"}


def test_frame_round_trips_through_csv(tmp_path: Path, dataset: Dataset) -> None:
    splits = ev.stratified_splits(dataset.y, 3, 1, 0)
    df = ev.frame(ev.validate("cv", dataset, splits, FAST, [0.2], baselines=False)[0])
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    back = ev.read_frame(path)
    assert back is not None
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert ev.read_frame(tmp_path / "bad.csv") is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--folds", "1"], "--folds: 1 must be at least 2"),
        (["--folds", "ten"], "--folds: 'ten' is not a whole number"),
        (["--folds", "500"], "--folds 500 exceeds the smaller class (239 rows)"),
        (["--repeats", "0"], "--repeats: 0 must be at least 1"),
        (["--cv-seed", "-1"], "--cv-seed: -1 must be at least 0"),
        (["--lr", "-0.1"], "--lr: -0.1 must be a positive finite number"),
        (["--lr", "inf"], "--lr: inf must be a positive finite number"),
        (["--iterations", "0"], "--iterations: 0 must be at least 1"),
        (["--hidden", "1.5"], "--hidden: '1.5' is not a whole number"),
        (["--seed", "-2"], "--seed: -2 must be at least 0"),
        (["--threshold", "1.5"], "--threshold: 1.5 must lie in [0, 1]"),
        (["--sweep", "0.3,,0.4"], "--sweep: '0.3,,0.4' is not a comma-separated list"),
        (["--sweep", "0.3,2"], "--sweep: 2 must lie in [0, 1]"),
        (["--data", "/no/such/file.csv"], "data file /no/such/file.csv does not exist"),
        (["--out", "/"], "--out / is a folder, not a file path"),
        (["--csv", "/"], "--csv / is a folder, not a file path"),
        (["--jobs", "2"], "unrecognized arguments: --jobs 2"),
        (["--parts", "cv,bogus"], "--parts: 'bogus' is not one of cv, grouped, temporal"),
        (["--parts", "cv,,grouped"], "--parts: 'cv,,grouped' is not a comma-separated list"),
        (["--weight-decay", "-1"], "--weight-decay: -1 must be a finite number >= 0"),
        (["--weight-decay", "nan"], "--weight-decay: nan must be a finite number >= 0"),
        (["--wd-grid", "0.1,x"], "--wd-grid: 'x' is not a number"),
        (["--calibration-fraction", "1"], "--calibration-fraction: 1 must lie strictly between"),
        (["--calibration-fraction", "0"], "--calibration-fraction: 0 must lie strictly between"),
        (["--inner-folds", "1"], "--inner-folds: 1 must be at least 2"),
        (["--nested-repeats", "6"], "--nested-repeats 6 exceeds --repeats 5"),
        (["--report-from", "/no/such.csv"], "--report-from /no/such.csv does not exist"),
        (["--early-stopping", "yes"], "unrecognized arguments: yes"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_code_2(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code: str | int | None
    try:
        code = ev.main([*args, "--quiet"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evaluate.py: error: ")
    assert problem in lines[0]


def test_malformed_data_file_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,5,1,1,1,2,1,3,1,1,7\n")
    assert ev.main(["--data", str(bad), "--quiet"]) == 2
    assert (
        capsys.readouterr().err
        == f"evaluate.py: error: {bad}:1, column 11 (class): 7 is not 2 or 4\n"
    )


def test_report_from_a_file_that_is_not_a_results_csv_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text("x,y\n1,2\n")
    assert ev.main(["--report-from", str(bad), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"evaluate.py: error: --report-from {bad}: not a results CSV of evaluate.py\n"
    )


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )


def test_script_runs_from_any_directory_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "cv" / "table.md"
    args = ["--parts", "cv", "--folds", "3", "--repeats", "1", "--iterations", "100"]
    result = run_script([*args, "--sweep", "0.3,0.4", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == result.stdout
    assert "3-fold cross-validation x 1 repeats" in result.stdout
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in table[0].split("|")[3:7]] == [
        "accuracy",
        "ROC AUC",
        "sensitivity",
        "specificity",
    ]
    rules = [line.split("|")[2].strip() for line in table[1:8]]
    served = f"P > {SERVED.threshold:g}"
    assert rules == [served, "P > 0.3", "P > 0.4", "P > 0.5", "decision > 0", "P > 0.5", "P > 0.5"]
    assert all(any(line.startswith(f"| {m}") for line in table) for m in MODELS)
    assert "cv: fold 3/3" in result.stderr


def test_every_part_runs_and_the_report_rebuilds_from_its_csv(tmp_path: Path) -> None:
    """Every part end to end (the peers are covered above; without them this takes a minute)."""
    csv = tmp_path / "results.csv"
    args = ["--folds", "3", "--repeats", "1", "--iterations", "60", "--lr", "0.5"]
    args += ["--inner-folds", "2", "--wd-grid", "0.01", "--no-baselines", "--quiet"]
    result = run_script([*args, "--csv", str(csv)], tmp_path)
    assert result.returncode == 0, result.stderr
    headings = [line for line in result.stdout.splitlines() if line.startswith("### ")]
    assert headings == [
        "### Repeated cross-validation",
        "### Grouped cross-validation",
        "### Temporal validation",
        "### Conformal coverage",
        "### Post-hoc scaling",
        "### Weight decay and early stopping",
    ]
    df = pd.read_csv(csv)
    assert set(df.part) == set(ev.PARTS)
    again = run_script([*args, "--report-from", str(csv)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout


def test_piped_progress_is_whole_lines(tmp_path: Path) -> None:
    """Off a terminal every fold is a line of its own: no carriage return to run them together
    in a captured log (the bytes are read: text mode would turn each one into a newline)."""
    args = ["--parts", "cv", "--folds", "3", "--repeats", "1", "--iterations", "60"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--no-baselines"],
        capture_output=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert b"\r" not in done.stdout + done.stderr
    folds = re.findall(rb"(?m)^cv: fold (\d)/3 \(\d+%\)  \d+ s$", done.stderr)
    assert folds == [b"1", b"2", b"3"]
