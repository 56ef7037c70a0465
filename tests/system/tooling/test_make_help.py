"""`make` alone lists every documented target (`## target: text` lines) and does nothing else;
each documented target is a real rule."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live_server import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"
DOCUMENTED = re.compile(r"(?m)^## ([a-z-]+): (.+)$")


def documented() -> dict[str, str]:
    return dict(DOCUMENTED.findall(MAKEFILE.read_text(encoding="utf-8")))


def make(cwd: Path, *goals: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *goals],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def alone(tmp_path: Path) -> Path:
    """A folder holding only the Makefile: whatever `make` would build shows there."""
    shutil.copy(MAKEFILE, tmp_path / "Makefile")
    return tmp_path


@pytest.mark.parametrize("goals", [(), ("help",)], ids=["make", "make help"])
def test_make_lists_every_documented_target_and_builds_nothing(
    alone: Path, goals: tuple[str, ...]
) -> None:
    done = make(alone, *goals)
    assert done.returncode == 0, done.stderr
    listed = dict(re.findall(r"(?m)^  make (\S+) +(.+)$", done.stdout))
    assert listed == documented()
    assert len(done.stdout.splitlines()) == len(listed)
    assert sorted(p.name for p in alone.iterdir()) == ["Makefile"]  # no .venv made


def test_the_documented_targets_include_the_everyday_ones() -> None:
    assert {"help", "serve", "test", "train", "promote"} <= set(documented())


@pytest.mark.parametrize("target", sorted(documented()))
def test_every_documented_target_is_a_rule(target: str) -> None:
    assert re.search(rf"(?m)^{re.escape(target)}:", MAKEFILE.read_text(encoding="utf-8"))
    done = make(REPO_ROOT, "--dry-run", "--always-make", target)
    assert "No rule to make target" not in done.stderr, done.stderr
