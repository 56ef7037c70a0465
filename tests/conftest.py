"""Shared fixtures: the real data file, the real committed artifact, and a live server."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact, load_artifact
from model.data import DEFAULT_DATA_PATH, Dataset, load_dataset
from tests.live_server import LiveServer, start_server
from tests.load_client import Expected

REPO_ROOT = Path(__file__).resolve().parent.parent
_RECORD_DIR_SET_HERE = "MALIGNANCY_TESTS_RECORD_DIR"


def pytest_configure(config: pytest.Config) -> None:
    """Apps built in process record into a folder of this test process, never into the
    checkout's var/record (live servers get their own: tests/live_server.py)."""
    if "RECORD_DIR" not in os.environ:
        os.environ["RECORD_DIR"] = tempfile.mkdtemp(prefix="tests-record-")
        os.environ[_RECORD_DIR_SET_HERE] = os.environ["RECORD_DIR"]


def pytest_unconfigure(config: pytest.Config) -> None:
    made = os.environ.pop(_RECORD_DIR_SET_HERE, None)
    if made is not None:
        os.environ.pop("RECORD_DIR", None)
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_path() -> Path:
    return DEFAULT_DATA_PATH


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return load_dataset(DEFAULT_DATA_PATH)


@pytest.fixture(scope="session")
def artifact_path() -> Path:
    return DEFAULT_ARTIFACT_PATH


@pytest.fixture(scope="session")
def artifact() -> Artifact:
    return load_artifact(DEFAULT_ARTIFACT_PATH)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The real service under uvicorn on a free loopback port, one per test module."""
    with start_server() as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        yield http


@pytest.fixture(scope="module")
def expected() -> Expected:
    """What the model package answers for each request the load tests send."""
    return Expected()
