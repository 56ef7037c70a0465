"""Every request/answer example of the README and the docs, run against a live server.

An example's answer must be exactly what the server sends, except where its title says it is
checked to 1e-15 (NumPy and BLAS: a batch of two rows or more, /explain's contributions) or
that it is shortened (only the fields shown). tests/system/docs/examples.py reads them.
"""

import contextlib
import io
import json
import shutil
import subprocess

import pytest

from tests.live_server import LiveServer
from tests.system.docs.examples import (
    DOCUMENTED_URL,
    CurlExample,
    PythonExample,
    agrees,
    all_blocks,
    curl_examples,
    needs_tolerance,
    python_examples,
)

CURL = curl_examples()
PYTHON = python_examples()
# Every route a reader needs an example of, on the native API and on V2.
DOCUMENTED_PATHS = {
    "/predict",
    "/predict/batch",
    "/explain",
    "/metrics",
    "/model",
    "/health",
    "/health/live",
    "/health/ready",
    "/v2/models/malignancy-predictor",
    "/v2/models/malignancy-predictor/infer",
}


def test_the_examples_cover_every_route() -> None:
    assert {example.path for example in CURL} >= DOCUMENTED_PATHS
    readme = {e.path for e in CURL if e.source.startswith("README.md")}
    assert "/predict" in readme
    assert "/v2/models/malignancy-predictor/infer" in readme


def test_every_python_block_is_an_example_with_its_output() -> None:
    python_blocks = [b for b in all_blocks() if b.lang == "python"]
    assert len(python_blocks) == len(PYTHON) >= 2


@pytest.mark.parametrize("example", CURL, ids=[e.source for e in CURL])
def test_blas_examples_say_so(example: CurlExample) -> None:
    if needs_tolerance(example):
        assert example.tolerance, f"{example.source} goes through BLAS: its title must say 1e-15"
    else:
        assert not example.tolerance, f"{example.source} is exact: its title must not say 1e-15"


@pytest.mark.parametrize("example", CURL, ids=[e.source for e in CURL])
def test_curl_example_answers_as_shown(server: LiveServer, example: CurlExample) -> None:
    assert shutil.which("curl"), "curl is needed to run the documented examples"
    result = subprocess.run(
        ["bash", "-c", example.command.replace(DOCUMENTED_URL, server.url)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    if example.tolerance or example.shortened:
        actual = json.loads(result.stdout)
        shown = json.loads(example.shown)
        assert agrees(shown, actual, example.tolerance, example.shortened), (
            f"{example.source} shows {example.shown}\nthe server said {result.stdout}"
        )
    else:
        assert result.stdout == example.shown, example.source


@pytest.mark.parametrize("example", PYTHON, ids=[e.source for e in PYTHON])
def test_python_example_prints_what_is_shown(server: LiveServer, example: PythonExample) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(example.code.replace(DOCUMENTED_URL, server.url), {})  # noqa: S102 - our own docs
    assert out.getvalue() == example.shown, example.source
