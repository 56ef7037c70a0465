"""`python -m app audit` argument checks: usage errors exit 2, --help names no secret."""

import csv
import io
from pathlib import Path

import pytest

from app.__main__ import main as app_main
from app.record.cli import _write_csv, main

SECRET = "postgresql://u:hunter2-secret@127.0.0.1:1/db"  # noqa: S105 - a fake, to hide


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["replay"],
        ["export"],
        ["export", "--format", "xml"],
        ["export", "--format", "jsonl", "--since", "yesterday"],
        ["prune"],
        ["prune", "--older-than", "0"],
        ["prune", "--older-than", "-3"],
        ["prune", "--older-than", "ten"],
        ["verify", "--extra"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("python -m app audit")


def test_parquet_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "parquet"]) == 2
    assert "--output" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["export", "--help"], ["prune", "--help"]])
def test_help_names_no_credential(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", SECRET)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage" in out
    assert "hunter2" not in out
    assert "127.0.0.1" not in out


def test_a_missing_sqlite_record_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RECORD_DIR", str(tmp_path / "none"))
    assert main(["verify"]) == 1
    assert "no record at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_python_m_app_audit_delegates(capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main(["audit", "frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_unreachable_database_is_reported_without_its_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", SECRET)  # port 1 on loopback: refused at once
    assert main(["verify"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the record (postgresql://127.0.0.1:1/db)" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a;=1+2", "a;=1+2"),  # quoted: a spreadsheet splitting on ; keeps it one text cell
        ("case:1", "case:1"),
    ],
)
def test_csv_text_cells_cannot_run_as_formulas(value: str, cell: str) -> None:
    out = io.StringIO()
    assert _write_csv(out, ["text", "number"], [(value, -0.25)]) == 1
    text = out.getvalue()
    assert text.splitlines()[1].startswith('"')  # every text cell is quoted
    (row,) = csv.DictReader(io.StringIO(text))
    assert row == {"text": cell, "number": "-0.25"}  # a number stays a number
