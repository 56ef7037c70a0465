"""Shared fixtures: the real data file and the real committed artifact."""

from pathlib import Path

import pytest

from model.artifact import DEFAULT_ARTIFACT_PATH, Artifact, load_artifact
from model.data import DEFAULT_DATA_PATH, Dataset, load_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent


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
