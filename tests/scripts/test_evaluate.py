"""scripts/evaluate.py: stratified folds, train-only scaling, sklearn-equal metrics, the CLI."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn import metrics as skm

from model.data import Dataset
from model.defaults import SERVED
from model.scaler import MinMaxScaler
from scripts import evaluate as ev

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"
FAST = ev.NetConfig(lr=0.07, iterations=200, hidden=15, seed=1)
MODELS = ("TwoLayerNet", "LogisticRegression", "SVC (RBF)", "RandomForest")


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

    ev.cross_validate(dataset, FAST, [0.5], folds=3, repeats=1, cv_seed=0)
    splits = ev.make_folds(dataset.y, 3, 1, seed=0)
    for name, calls in seen.items():
        assert len(calls) == len(splits), name
    for k, (train_idx, _) in enumerate(splits):
        X_train = dataset.X[train_idx]
        np.testing.assert_array_equal(seen["scaler"][k], X_train)
        scaled = MinMaxScaler.from_bounds(X_train.min(axis=0), X_train.max(axis=0))
        for name in ("net", "LogisticRegression", "SVC (RBF)"):
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
        np.testing.assert_array_equal(scores > b.threshold, b.estimator.predict(X_eval) == 1)
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


def test_table_has_every_model_and_thresholds_share_one_fit(dataset: Dataset) -> None:
    rows = ev.cross_validate(dataset, FAST, [0.5, 0.3], folds=3, repeats=1)
    assert [r.model for r in rows] == ["TwoLayerNet", "TwoLayerNet", *MODELS[1:]]
    assert [r.threshold for r in rows[:2]] == ["P > 0.5", "P > 0.3"]
    assert rows[0].values["roc_auc"] == rows[1].values["roc_auc"]  # same probabilities
    for r in rows:
        for metric in ev.METRICS:
            assert len(r.values[metric]) == 3
            assert 0.0 <= r.mean(metric) <= 1.0
    table = ev.markdown_table(rows, FAST)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[1] == "|---|---|---:|---:|---:|---:|"
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[:1] + lines[2:])
    assert all(model in table for model in MODELS)
    assert "TwoLayerNet 9-15-1 (lr 0.07, 200 it, seed 1)" in table
    only_net = ev.cross_validate(dataset, FAST, [0.5], folds=3, repeats=1, baselines=False)
    assert [r.model for r in only_net] == ["TwoLayerNet"]
    assert only_net[0].values == rows[0].values


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
        (["--jobs", "2"], "unrecognized arguments: --jobs 2"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_code_2(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_script_runs_from_any_directory_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "cv" / "table.md"
    args = ["--folds", "3", "--repeats", "1", "--iterations", "100", "--sweep", "0.3,0.4"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == result.stdout
    assert "3-fold cross-validation x 1 repeats" in result.stdout
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].split(" | ")[2:] == ["accuracy", "ROC AUC", "sensitivity", "specificity |"]
    rules = [line.split(" | ")[1] for line in table[1:]]
    served = f"P > {SERVED.threshold:g}"
    assert rules == [served, "P > 0.3", "P > 0.4", "P > 0.5", "decision > 0", "P > 0.5"]
    assert all(any(line.startswith(f"| {m}") for line in table) for m in MODELS)
    assert "fold 3/3" in result.stderr
