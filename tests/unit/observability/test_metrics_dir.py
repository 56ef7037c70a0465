"""The private metrics directory: made per start, held by its service while it runs, and the
ones left by services killed outright removed at the next start."""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from app.observability.metrics_dir import (
    ENV_VAR,
    OWNER_FILE,
    PRIVATE_PREFIX,
    metrics_dir,
    remove_orphans,
)


def private(root: Path, name: str, owner: bool = True) -> Path:
    directory = root / f"{PRIVATE_PREFIX}{name}"
    directory.mkdir(mode=0o700)
    (directory / "counter_1.db").write_bytes(b"\0" * 16)
    if owner:
        (directory / OWNER_FILE).write_bytes(b"")
    return directory


def test_a_start_removes_what_a_killed_service_left_and_nothing_else(tmp_path: Path) -> None:
    orphan = private(tmp_path, "killed")  # its owner file held by nobody
    living = private(tmp_path, "living")
    held = os.open(living / OWNER_FILE, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a running service holds it, whatever its pid
    unowned = private(tmp_path, "unowned", owner=False)  # being made, or an older version's
    target = tmp_path / "unrelated"
    target.mkdir()
    (target / OWNER_FILE).write_bytes(b"")
    link = tmp_path / f"{PRIVATE_PREFIX}link"
    link.symlink_to(target)  # never followed
    a_file = tmp_path / f"{PRIVATE_PREFIX}file"
    a_file.write_text("")
    environ: dict[str, str] = {}
    try:
        with metrics_dir(None, environ, temp_root=tmp_path) as created:
            assert environ[ENV_VAR] == str(created)
            assert not orphan.exists()
            for kept in (living, unowned, target / OWNER_FILE, a_file):
                assert kept.exists(), kept
            assert link.is_symlink()
            assert _held_elsewhere(created / OWNER_FILE)  # this service's, while it runs
        assert not created.exists()
        assert living.exists()
    finally:
        os.close(held)


def test_a_service_that_ended_outright_leaves_its_directory_free(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from app.observability.metrics_dir import metrics_dir\n"
        "with metrics_dir(None, {}, temp_root=Path(sys.argv[1])) as d:\n"
        "    print(d, flush=True)\n"
        "    os._exit(0)  # as SIGKILL: no cleanup\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    left = Path(done.stdout.strip())
    assert left.is_dir()
    assert remove_orphans(tmp_path) == [left]
    assert not left.exists()


def test_a_root_that_cannot_be_read_removes_nothing(tmp_path: Path) -> None:
    assert remove_orphans(tmp_path / "missing") == []


def _held_elsewhere(owner_file: Path) -> bool:
    descriptor = os.open(owner_file, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
