"""The private metrics directory: made per start, named after its process, and the ones left by
processes killed outright removed at the next start."""

import os
import subprocess
import sys
from pathlib import Path

from app.observability.metrics_dir import ENV_VAR, PRIVATE_PREFIX, metrics_dir, remove_orphans


def gone_pid() -> int:
    """The number of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(done.stdout)


def private(root: Path, pid: int, suffix: str = "abc_123") -> Path:
    directory = root / f"{PRIVATE_PREFIX}{pid}-{suffix}"
    directory.mkdir(mode=0o700)
    (directory / "counter_1.db").write_bytes(b"\0" * 16)
    return directory


def test_a_start_removes_what_a_killed_process_left_and_nothing_else(tmp_path: Path) -> None:
    orphan = private(tmp_path, gone_pid())
    own_number = private(tmp_path, os.getpid(), "restarted")  # a container restarted in place
    living = private(tmp_path, os.getppid())  # another service, still running
    kept = [
        living,
        tmp_path / f"{PRIVATE_PREFIX}{gone_pid()}-file",  # a file, not a directory
        tmp_path / f"{PRIVATE_PREFIX}{gone_pid()}-link",  # a link, never followed
        tmp_path / f"{PRIVATE_PREFIX}x-notapid",
        tmp_path / "unrelated",
    ]
    kept[1].write_text("")
    target = tmp_path / "unrelated"
    target.mkdir()
    (target / "keep").write_text("")
    kept[2].symlink_to(target)
    kept[3].mkdir()
    environ: dict[str, str] = {}

    with metrics_dir(None, environ, temp_root=tmp_path) as created:
        assert environ[ENV_VAR] == str(created)
        assert created.name.startswith(f"{PRIVATE_PREFIX}{os.getpid()}-")
        assert not orphan.exists()
        assert not own_number.exists()
        assert all(path.exists() or path.is_symlink() for path in kept)
        assert (target / "keep").exists()
    assert not created.exists()
    assert living.exists()


def test_a_root_that_cannot_be_read_removes_nothing(tmp_path: Path) -> None:
    assert remove_orphans(tmp_path / "missing") == []
