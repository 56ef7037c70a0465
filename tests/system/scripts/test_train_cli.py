"""scripts/train.py as a user runs it: arguments, output, plots and the artifact it writes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from model.artifact import load_artifact

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--lr", "-0.1"], "--lr: -0.1 must be a positive finite number"),
        (["--lr", "0"], "--lr: 0 must be a positive finite number"),
        (["--lr", "nan"], "--lr: nan must be a positive finite number"),
        (["--lr", "fast"], "--lr: 'fast' is not a number"),
        (["--iterations", "0"], "--iterations: 0 must be at least 1"),
        (["--iterations", "1.5"], "--iterations: '1.5' is not a whole number"),
        (["--hidden", "-3"], "--hidden: -3 must be at least 1"),
        (["--seed", "-1"], "--seed: -1 must be at least 0"),
        (["--threshold", "1.5"], "--threshold: 1.5 must lie in [0, 1]"),
        (["--split", "random"], "--split: invalid choice: 'random'"),
        (["--calibration-folds", "1"], "--calibration-folds: 1 must be at least 2"),
        (["--calibration-folds", "101"], "--calibration-folds must be at most 100"),
        (["--data", "/no/such/file.csv"], "data file /no/such/file.csv does not exist"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_code_2(args: list[str], problem: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: error: ")
    assert problem in lines[0]


def test_malformed_data_file_gets_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,5,1,1,1,2,1,3,1,1,7\n")
    result = run("--data", str(bad), "--out", str(tmp_path / "w.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"train.py: error: {bad}:1, column 11 (class): 7 is not 2 or 4"
    assert not (tmp_path / "w.json").exists()


def test_training_run_prints_the_table_and_writes_artifact_and_plots(tmp_path: Path) -> None:
    out, plots = tmp_path / "model" / "w.json", tmp_path / "plots"
    result = run(
        "--split",
        "seed",
        "--iterations",
        "300",
        "--lr",
        "0.05",
        "--out",
        str(out),
        "--plots",
        str(plots),
        "--calibration-folds",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert "699 rows, 16 with '?' dropped" in result.stdout
    for threshold in ("0.50", "0.70", "0.80", "0.90"):
        assert f"\n     {threshold}  " in result.stdout
    assert "validation confusion matrix" in result.stdout
    assert "calibration (validation, no threshold): Brier " in result.stdout
    assert "prediction sets: cross-conformal over 3 folds of the training rows" in result.stdout
    for confidence in ("0.9", "0.95", "0.99"):
        assert re.search(
            rf"\n +{re.escape(confidence)}  +[01]\.\d{{4}}  +[01]\.\d{{4}}", result.stdout
        )
    assert "it/s" in result.stderr  # the progress bar, with the loss beside it
    assert "loss=" in result.stderr
    artifact = load_artifact(out)
    assert f"model version {artifact.model_version}" in result.stdout
    assert artifact.training.split == "seed"
    assert artifact.training.iterations == 300
    assert artifact.conformal.folds == 3
    for name in ("loss.png", "confusion.png", "roc.png", "reliability.png"):
        assert (plots / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in out.parent.iterdir()) == ["w.json"]  # no temp file left behind


def run_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """train.py in a Python where `module` cannot be imported (as without the train extra)."""
    prelude = (
        f"import runpy, sys; sys.modules[{module!r}] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_matplotlib_it_stops_before_training(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    # 10 million iterations would take most of an hour: the answer must come before training
    result = run_without("matplotlib", "--iterations", "10000000", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "train.py: error: the plots need matplotlib (the train extra: pip install -e '.[train]', "
        "or make train); or pass --no-plots"
    )
    assert not out.exists()


def test_without_matplotlib_no_plots_trains(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    result = run_without("matplotlib", "--iterations", "50", "--no-plots", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert load_artifact(out).training.iterations == 50


def test_without_tqdm_it_trains_without_a_progress_bar(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    result = run_without("tqdm", "--iterations", "50", "--no-plots", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "no progress bar: tqdm (the train extra) is not installed" in result.stdout
    assert "it/s" not in result.stderr
    assert out.is_file()


def test_overwriting_the_served_artifact_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import train as train_cli

    served = tmp_path / "weights.json"  # stands in for model/weights.json
    monkeypatch.setattr(train_cli, "DEFAULT_ARTIFACT_PATH", served)
    args = ["--iterations", "50", "--no-plots", "--quiet", "--out", str(served)]
    notices, versions = [], []
    for extra in ([], [], ["--seed", "2"]):
        assert train_cli.main([*args, *extra]) == 0
        notices.append([line for line in capsys.readouterr().out.splitlines() if "NOTE" in line])
        versions.append(load_artifact(served).model_version)
    assert all(len(notice) == 1 for notice in notices)
    assert all("git checkout model/weights.json" in notice[0] for notice in notices)
    assert "(was absent)" in notices[0][0]
    assert "(unchanged)" in notices[1][0]
    assert versions[2] != versions[1]
    assert f"(was {versions[1]})" in notices[2][0]
    assert (
        train_cli.main(
            ["--iterations", "50", "--no-plots", "--quiet", "--out", str(tmp_path / "o.json")]
        )
        == 0
    )
    assert "NOTE" not in capsys.readouterr().out  # any other path: no notice
