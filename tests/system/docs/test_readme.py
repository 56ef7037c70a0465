"""The README's examples, run as written against a live server: what it shows is what it gets."""

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer

README = Path(__file__).resolve().parents[3] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))]


def example_pairs(command_lang: str, answer_lang: str) -> list[tuple[str, str]]:
    """Each example block followed directly by the block that shows its answer."""
    found = blocks()
    return [
        (code, found[i + 1][1])
        for i, (lang, code) in enumerate(found[:-1])
        if lang == command_lang and found[i + 1][0] == answer_lang
    ]


CURL_EXAMPLES = [(c, a) for c, a in example_pairs("sh", "json") if c.startswith("curl ")]
PYTHON_EXAMPLES = example_pairs("python", "text")


def shown_in(expected: Any, actual: Any) -> bool:
    """True when every value the README shows is in the actual answer (the README may shorten an
    object to some of its fields); floats compare to 1e-9, since BLAS may differ in last bits."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and shown_in(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(shown_in(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(expected, actual, rel_tol=1e-9)
    return bool(expected == actual and type(expected) is type(actual))


def test_readme_has_the_examples_this_test_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make serve" in text
    assert "make test" in text
    paths = {re.search(r"127\.0\.0\.1:8000(/[a-z0-9/-]*)", c).group(1) for c, _ in CURL_EXAMPLES}  # type: ignore[union-attr]
    assert paths >= {
        "/predict",
        "/predict/batch",
        "/explain",
        "/metrics",
        "/health",
        "/model",
        "/v2/models/malignancy-predictor",
        "/v2/models/malignancy-predictor/infer",
    }
    assert len(PYTHON_EXAMPLES) == 3  # the httpx tour, /explain's and the tritonclient example


@pytest.mark.parametrize(("command", "shown"), CURL_EXAMPLES, ids=range(len(CURL_EXAMPLES)))
def test_curl_example_answers_as_shown(server: LiveServer, command: str, shown: str) -> None:
    assert shutil.which("curl"), "curl is needed to run the README's examples"
    script = command.replace(DOCUMENTED_URL, server.url)
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    actual = json.loads(result.stdout)
    assert shown_in(json.loads(shown), actual), f"README shows {shown}\nserver said {actual}"


@pytest.mark.parametrize(("code", "shown"), PYTHON_EXAMPLES)
def test_python_example_prints_what_is_shown(server: LiveServer, code: str, shown: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace(DOCUMENTED_URL, server.url), {})  # noqa: S102 - our own README
    assert out.getvalue() == shown
