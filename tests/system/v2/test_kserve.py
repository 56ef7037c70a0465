"""The V2 routes through KServe's `InferenceRESTClient` (`RESTConfig(protocol="v2")`) against a
live server: health, readiness, infer with JSON and binary tensors for every row of the data
set, requested outputs, the API key, and errors, each answer compared with /predict and every
response body validated against the suite's own schemas of the protocol's messages.

KServe cannot live in the dev environment: it pins pandas < 3, psutil < 6 and python-dateutil
< 3. So the client runs in a venv of its own, `.venv-kserve`, installed on first use from the
hashed lock `requirements/kserve-client.txt` (kserve 0.21.0 and what it pulls: kubernetes,
grpcio, pandas, about 450 MB) and reused while the lock is unchanged.
tests/system/v2/kserve_client.py
is the program it runs; it imports nothing from this project. A failed install fails these
tests: they are never skipped.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import pytest

from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import REPO_ROOT, LiveServer, start_server
from tests.system.v2.v2_protocol import validate

MODEL: Final = "malignancy-predictor"
API_KEY: Final = "kserve-secret"
LOCK: Final = REPO_ROOT / "requirements" / "kserve-client.txt"
VENV: Final = REPO_ROOT / ".venv-kserve"
CLIENT: Final = Path(__file__).with_name("kserve_client.py")
INFERS: Final = ("json_int64", "binary_int64", "json_int32", "binary_fp64")


def _install(venv: Path) -> Path:
    """venv's Python, with the lock installed; rebuilt when the lock's hash has changed."""
    python = venv / "bin" / "python"
    stamp = venv / "installed-lock.sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(LOCK),
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(
                f"installing KServe's client failed: {' '.join(step)}\n{done.stderr[-3000:]}"
            )
    stamp.write_text(digest)
    return python


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    return _install(VENV)


def _run(python: Path, server: LiveServer, rows: list[list[int]], key: str | None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    command = [str(python), str(CLIENT), server.url, MODEL, *([key] if key else [])]
    done = subprocess.run(
        command, input=json.dumps(rows), capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def native(client: httpx.Client, dataset: Dataset) -> dict[str, Any]:
    """/predict for each of the 683 rows."""
    rows = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in dataset.X.tolist()]
    answers = [client.post("/predict", json=row).raise_for_status().json() for row in rows]
    return {
        "probability": np.array([a["probability"] for a in answers]),
        "class": [a["class"] for a in answers],
        "version": answers[0]["model_version"],
    }


@pytest.fixture(scope="module")
def results(kserve_python: Path, server: LiveServer, dataset: Dataset) -> Any:
    return _run(kserve_python, server, dataset.X.tolist(), None)


def test_health_and_readiness(results: Any) -> None:
    assert results["live"] == {"ok": True}
    assert results["ready"] == {"ok": True}
    assert results["model_ready"] == {"ok": True}
    assert results["other_model_ready"] == {"ok": False}  # our 404, read as not ready


@pytest.mark.parametrize("name", INFERS)
def test_infer_every_row_equals_predict(results: Any, native: dict[str, Any], name: str) -> None:
    answer = results[name]["ok"]
    assert answer["id"] == f"kserve-{name}"
    assert answer["model_name"] == MODEL
    assert answer["probability"]["datatype"] == "FP64"
    # more than one row: the batch scorer, within 1e-15 of /predict's single-row floats
    np.testing.assert_allclose(
        answer["probability"]["data"], native["probability"], rtol=0, atol=1e-15
    )
    assert answer["class"] == {"datatype": "BYTES", "data": native["class"]}


def _recorded(results: Any, request_id: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [
        r for r in results["responses"] if (r["json"] or {}).get("id") == request_id
    ]
    (found,) = matches
    return found


@pytest.mark.parametrize("name", INFERS)
def test_binary_inputs_travel_as_binary(results: Any, name: str) -> None:
    recorded = _recorded(results, f"kserve-{name}")
    binary = name.startswith("binary")
    expected = "application/octet-stream" if binary else "application/json"
    assert recorded["request_content_type"] == expected
    assert recorded["content_type"] == "application/json"  # outputs as JSON unless asked


def test_requested_binary_output(results: Any, native: dict[str, Any]) -> None:
    recorded = _recorded(results, "kserve-binary-output")
    assert recorded["content_type"] == "application/octet-stream"
    (output,) = recorded["json"]["outputs"]
    assert output["parameters"] == {"binary_data_size": 8 * len(native["class"])}
    answer = results["binary_probability_only"]["ok"]
    assert set(answer) == {"id", "model_name", "probability"}
    np.testing.assert_allclose(
        answer["probability"]["data"], native["probability"], rtol=0, atol=1e-15
    )


def test_errors_reach_the_client_with_the_protocols_message(results: Any) -> None:
    bad = results["bad_value"]
    assert bad["status"] == 400
    assert "element 26 (row 2, mitoses)" in bad["message"]
    unknown = results["unknown_model"]
    assert unknown["status"] == 404
    assert MODEL in unknown["message"]


def test_every_response_body_is_the_protocols(results: Any, native: dict[str, Any]) -> None:
    kinds = {"/v2/health/live": "server_live", "/v2/health/ready": "server_ready"}
    responses = results["responses"]
    assert len(responses) == 4 + len(INFERS) + 3
    for response in responses:
        path, status, body = response["path"], response["status"], response["json"]
        if status >= 400:
            assert response["content_type"] == "application/json"
            validate("error", body)
        elif path.endswith("/infer"):
            validate("inference_response", body)
            assert body["model_version"] == native["version"]
        elif path in kinds:
            validate(kinds[path], body)
        else:
            assert path.endswith("/ready")
            assert status == 200


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[LiveServer]:
    with start_server({"API_KEY": API_KEY}) as live:
        yield live


def test_api_key_as_a_header(kserve_python: Path, keyed_server: LiveServer) -> None:
    rows = [[5, 1, 1, 1, 2, 1, 3, 1, 1], [8, 10, 10, 8, 7, 10, 9, 7, 1]]
    without = _run(kserve_python, keyed_server, rows, None)
    # health and readiness stay open; infer needs the key, exactly as /predict does
    assert without["live"] == without["ready"] == without["model_ready"] == {"ok": True}
    for name in INFERS:
        assert without[name]["status"] == 401
        assert "X-API-Key" in without[name]["message"]
    keyed = _run(kserve_python, keyed_server, rows, API_KEY)
    for name in INFERS:
        assert keyed[name]["ok"]["class"]["data"] == ["benign", "malignant"]
