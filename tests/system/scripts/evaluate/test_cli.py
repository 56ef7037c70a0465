"""python -m scripts.evaluate: one-line errors, the outputs, every part end to end and its
report rebuilt from the CSV, progress in a pipe."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from model.defaults import SERVED
from scripts.evaluate.cli import main
from scripts.evaluate.common import PARTS
from tests.system.scripts.evaluate import MODELS, REPO


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
        code = main([*args, "--quiet"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("scripts.evaluate: error: ")
    assert problem in lines[0]


def test_malformed_data_file_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,5,1,1,1,2,1,3,1,1,7\n")
    assert main(["--data", str(bad), "--quiet"]) == 2
    assert (
        capsys.readouterr().err
        == f"scripts.evaluate: error: {bad}:1, column 11 (class): 7 is not 2 or 4\n"
    )


def test_report_from_a_file_that_is_not_a_results_csv_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text("x,y\n1,2\n")
    assert main(["--report-from", str(bad), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"scripts.evaluate: error: --report-from {bad}: not a results CSV of scripts.evaluate\n"
    )


def test_an_output_that_cannot_be_written_gets_one_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    csv = blocker / "results.csv"  # its folder would have to replace a file
    args = ["--parts", "cv", "--folds", "3", "--repeats", "1", "--iterations", "60"]
    assert main([*args, "--no-baselines", "--quiet", "--csv", str(csv)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("### Repeated cross-validation")  # the report is printed all the same
    assert err.startswith(f"scripts.evaluate: error: cannot write {csv}: ")
    assert err.count("\n") == 1


# `make evaluate`'s command, run from elsewhere: the repository only on the import path.
COMMAND = [sys.executable, "-m", "scripts.evaluate"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        env=ENV,
    )


def test_module_runs_from_another_directory_and_writes_the_table(tmp_path: Path) -> None:
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
    assert set(df.part) == set(PARTS)
    again = run_script([*args, "--report-from", str(csv)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout


def test_piped_progress_is_whole_lines(tmp_path: Path) -> None:
    """Off a terminal every fold is a line of its own: no carriage return to run them together
    in a captured log (the bytes are read: text mode would turn each one into a newline)."""
    args = ["--parts", "cv", "--folds", "3", "--repeats", "1", "--iterations", "60"]
    done = subprocess.run(
        [*COMMAND, *args, "--no-baselines"],
        capture_output=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    assert b"\r" not in done.stdout + done.stderr
    folds = re.findall(rb"(?m)^cv: fold (\d)/3 \(\d+%\)  \d+ s$", done.stderr)
    assert folds == [b"1", b"2", b"3"]
