"""scripts/train.py as a user runs it: arguments, output, plots, the artifact it writes beside
the served one, and promoting it."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from model.artifact import DEFAULT_ARTIFACT_PATH, load_artifact

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_raw(*args: str) -> subprocess.CompletedProcess[bytes]:
    """As `run`, but the output's bytes: text mode would turn every carriage return into a
    newline, hiding the very thing a piped run must not print."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, timeout=300, check=False
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
        (["--promote", "--out", "/no/such/w.json"], "--promote: no artifact at /no/such/w.json"),
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
    raw = run_raw(
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
    assert raw.returncode == 0, raw.stderr
    assert b"\r" not in raw.stdout + raw.stderr  # a pipe gets whole lines, no redrawn bar
    stdout, stderr = raw.stdout.decode(), raw.stderr.decode()
    assert "699 rows, 16 with '?' dropped" in stdout
    for threshold in ("0.50", "0.70", "0.80", "0.90"):
        assert f"\n     {threshold}  " in stdout
    assert "validation confusion matrix" in stdout
    assert "calibration (validation, no threshold): Brier " in stdout
    assert "prediction sets: cross-conformal over 3 folds of the training rows" in stdout
    for confidence in ("0.9", "0.95", "0.99"):
        assert re.search(rf"\n +{re.escape(confidence)}  +[01]\.\d{{4}}  +[01]\.\d{{4}}", stdout)
    progress = re.findall(r"(?m)^training: iteration (\d+)/300 \(\d+%\)  loss=\d\.\d{6}  ", stderr)
    assert progress[0] == "1"
    assert progress[-1] == "300"
    assert progress == sorted(progress, key=int)
    folds = re.findall(r"(?m)^calibration network (\d)/3 trained$", stdout)
    assert folds == ["1", "2", "3"]
    artifact = load_artifact(out)
    assert f"model version {artifact.model_version}" in stdout
    assert f"to serve this model: python scripts/train.py --promote --out {out}" in stdout
    assert "NOTE" not in stdout
    assert artifact.training.split == "seed"
    assert artifact.training.iterations == 300
    assert artifact.conformal.folds == 3
    for name in ("loss.png", "confusion.png", "roc.png", "reliability.png"):
        assert (plots / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in out.parent.iterdir()) == ["w.json"]  # no temp file left behind


def test_on_a_terminal_the_progress_is_a_bar_redrawn_in_place(tmp_path: Path) -> None:
    """The other side of the line-by-line output above: stderr a terminal, tqdm's bar."""
    primary, secondary = pty.openpty()
    # A terminal 100 columns wide (tqdm draws nothing in 0), which passes "\n" through as is
    # (no ONLCR): any "\r" read back is the script's own.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    mode = termios.tcgetattr(secondary)
    mode[1] &= ~termios.ONLCR
    termios.tcsetattr(secondary, termios.TCSANOW, mode)
    args = ["--iterations", "300", "--no-plots", "--calibration-folds", "2"]
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--out", str(tmp_path / "w.json")],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the script has closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert process.wait(timeout=300) == 0
    assert re.search(rb"\r *\d+%\|.*\| 300/300 ", seen)  # the bar, redrawn to its end
    assert b"it/s" in seen
    assert b"training: iteration" not in seen


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


def test_without_tqdm_the_progress_is_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    result = run_without("tqdm", "--iterations", "50", "--no-plots", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "training: iteration 50/50 (100%)  loss=" in result.stderr
    assert "it/s" not in result.stderr
    assert out.is_file()


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The served artifact (the committed one's bytes) and the candidate path, in tmp_path."""
    from scripts import train as train_cli

    served, candidate = tmp_path / "weights.json", tmp_path / "weights.candidate.json"
    served.write_bytes(DEFAULT_ARTIFACT_PATH.read_bytes())
    monkeypatch.setattr(train_cli, "DEFAULT_ARTIFACT_PATH", served)
    monkeypatch.setattr(train_cli, "CANDIDATE_PATH", candidate)
    return served, candidate


QUICK = ["--iterations", "50", "--no-plots", "--quiet", "--seed", "2"]


def test_training_writes_the_candidate_and_promoting_serves_it(
    paths: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import train as train_cli

    served, candidate = paths
    committed = served.read_bytes()
    assert train_cli.main(QUICK) == 0
    out = capsys.readouterr().out
    assert served.read_bytes() == committed  # training alone never touches the served artifact
    assert f"wrote {candidate} " in out
    assert "to serve this model: make promote" in out
    old, new = load_artifact(served).content_sha256, load_artifact(candidate).content_sha256
    assert old != new

    assert train_cli.main(["--promote"]) == 0
    out = capsys.readouterr().out
    assert served.read_bytes() == candidate.read_bytes()
    assert f"promoted {candidate}" in out
    assert f"NOTE: replaced {served}, the artifact the service serves: content_sha256 {new}" in out
    assert f"(was {old})" in out

    assert train_cli.main(["--promote"]) == 0
    assert f"content_sha256 {new} (unchanged)" in capsys.readouterr().out
    assert sorted(p.name for p in served.parent.iterdir()) == [candidate.name, served.name]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda raw: raw[: len(raw) // 2], "not valid JSON"),
        (
            lambda raw: re.sub(
                rb'"content_sha256": "[0-9a-f]{64}"', b'"content_sha256": "%s"' % (b"0" * 64), raw
            ),
            "content hash mismatch",
        ),
    ],
)
def test_promoting_a_bad_candidate_leaves_the_served_artifact(
    paths: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[bytes], bytes],
    problem: str,
) -> None:
    from scripts import train as train_cli

    served, candidate = paths
    committed = served.read_bytes()
    candidate.write_bytes(damage(committed))
    assert candidate.read_bytes() != committed
    assert train_cli.main(["--promote"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: error: --promote: {candidate}")
    assert problem in err
    assert served.read_bytes() == committed


def test_an_explicit_out_to_the_served_artifact_says_what_it_replaced(
    paths: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import train as train_cli

    served, _ = paths
    old = load_artifact(served).content_sha256
    assert train_cli.main([*QUICK, "--out", str(served)]) == 0
    new = load_artifact(served).content_sha256
    notices = [line for line in capsys.readouterr().out.splitlines() if "NOTE" in line]
    assert notices == [
        f"NOTE: replaced {served}, the artifact the service serves: content_sha256 {new} "
        f"(was {old}); the next start of the service serves it; "
        f"`git checkout -- {served}` restores the committed one."
    ]
