"""The package as the Dockerfile installs it: a wheel built from the source with pip, without
build isolation or an index, holding every module of app/ and model/ and the served artifact,
with pyproject.toml's version in its metadata (the version the service then reports in GET /v2
and openapi.json, instead of the source tree's 0.0.0+unknown)."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[3]
PACKAGES: Final = ("app", "model")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Built from a copy of what the Dockerfile copies, so no build output lands in the repo."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    command = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(out)]
    subprocess.run(
        [sys.executable, "-m", "pip", *command, "--quiet", "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_every_module_and_the_artifact(wheel: zipfile.ZipFile) -> None:
    in_wheel = {name for name in wheel.namelist() if name.split("/")[0] in PACKAGES}
    in_source = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
    }
    assert in_source
    assert {name for name in in_wheel if name.endswith(".py")} == in_source
    assert wheel.read("model/weights.json") == (REPO / "model" / "weights.json").read_bytes()
    assert "model/weights.candidate.json" not in in_wheel


def test_the_wheel_carries_the_projects_version(wheel: zipfile.ZipFile) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    headers = HeaderParser().parsestr(wheel.read(metadata).decode("utf-8"))
    assert headers["Name"] == project["name"]
    assert headers["Version"] == project["version"] != "0.0.0+unknown"
