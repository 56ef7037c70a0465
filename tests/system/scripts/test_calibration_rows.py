"""scripts/calibration_rows.py as a user runs it, and the docs' tables it and the artifact back."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from model.artifact import Artifact
from model.conformal import REPORT_CONFIDENCES

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "calibration_rows.py"
PAGE = ROOT / "docs" / "answers.md"  # Reading an answer


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def table_rows(text: str, first_cell: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell}")]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--folds", "1"], "--folds: 1 must be at least 2"),
        (["--folds", "101"], "--folds must be at most 100"),
        (["--calibration-fraction", "0"], "strictly between 0 and 1"),
        (["--calibration-fraction", "1.5"], "--calibration-fraction: 1.5 must lie in [0, 1]"),
        (["--iterations", "0"], "--iterations: 0 must be at least 1"),
        (["--data", "/no/such.csv"], "data file /no/such.csv does not exist"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_code_2(args: list[str], problem: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("calibration_rows.py: error: ")
    assert problem in result.stderr


def test_quick_run_prints_both_designs_at_every_confidence() -> None:
    result = run("--iterations", "200", "--lr", "0.05", "--folds", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "137 (89 benign, 48 malignant)" in out
    cross, three_way = table_rows(out, "cross-conformal, 3 folds"), table_rows(out, "three-way")
    assert len(cross) == len(three_way) == len(REPORT_CONFIDENCES) + 1
    # the three-way split's network is trained on 546 - 137 rows and calibrated on 137
    assert "| 409 rows | 89 / 48 | 0.9889 / 0.9796 |" in three_way[-1]
    assert "| 546 rows | 355 / 191 | 0.9972 / 0.9948 |" in cross[-1]


@pytest.mark.slow
def test_docs_show_the_scripts_tables_at_the_served_settings() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    page = PAGE.read_text(encoding="utf-8")
    for line in table_rows(result.stdout, "cross-conformal") + table_rows(result.stdout, "three"):
        assert line in page, f"{PAGE.name} lacks {line}"


def test_docs_coverage_table_is_the_artifacts(artifact: Artifact) -> None:
    page = PAGE.read_text(encoding="utf-8")
    section = page.split("**How the sets did on the 137 validation rows**", 1)[1]
    for confidence in REPORT_CONFIDENCES:
        s = artifact.validation_sets(confidence)
        row = (
            f"| {confidence:g} | {s.coverage[0]:.4f} | {s.coverage[1]:.4f} | {s.singleton:.3f}"
            f" | {s.both:.3f} | {s.empty:.3f} |"
        )
        assert row in section.split("\n\n", 2)[1], row
    c = artifact.calibration_metrics()
    claim = (
        f"Brier score {c.brier_score:.4f}, log loss\n{c.log_loss:.4f}, expected calibration "
        f"error (ECE, 10 equal-width bins) {c.ece:.4f}"
    )
    assert claim in page
    limits = artifact.conformal.classifier().max_confidence()
    n = len(artifact.conformal.benign), len(artifact.conformal.malignant)
    assert f"{n[0]}/{n[0] + 1} ≈ {limits[0]:.4f} (benign)" in page
    assert re.search(rf"{n[1]}/{n[1] + 1} ≈ {limits[1]:.4f} \(malignant\)", page)
