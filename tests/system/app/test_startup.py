"""A bad model artifact stops the real server with one line on stderr and a non-zero exit."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from model.artifact import DEFAULT_ARTIFACT_PATH, content_hash
from tests.live_server import (
    PYTHON_M_APP,
    UVICORN_FACTORY,
    ServerError,
    run_server,
    start_server,
)

EXIT_TIMEOUT = 30.0


def _missing(tmp: Path) -> Path:
    return tmp / "no-such-weights.json"


def _directory(tmp: Path) -> Path:
    return tmp  # exists, cannot be read as a file


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.json"
    path.write_bytes(b"")
    return path


def _truncated(tmp: Path) -> Path:
    path = tmp / "truncated.json"
    text = DEFAULT_ARTIFACT_PATH.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    return path


def _not_utf8(tmp: Path) -> Path:
    path = tmp / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    return path


def _tampered(tmp: Path) -> Path:
    """One weight changed in its last digit: valid JSON whose content hash no longer matches."""
    payload = json.loads(DEFAULT_ARTIFACT_PATH.read_text())
    payload["parameters"]["W1"][0][0] = payload["parameters"]["W1"][0][0] + 1e-9
    path = tmp / "tampered.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def _resigned(payload: dict[str, Any], path: Path) -> Path:
    """Write `payload` with a correct content hash, as the training CLI would."""
    payload["content_sha256"] = content_hash(payload)
    path.write_text(json.dumps(payload))
    return path


def _malformed_metrics(tmp: Path) -> Path:
    """Signed and otherwise valid, but the stored accuracy table lacks the training side."""
    payload = json.loads(DEFAULT_ARTIFACT_PATH.read_text())
    payload["metrics"]["train"] = {}
    return _resigned(payload, tmp / "metrics.json")


def _wrong_format(tmp: Path) -> Path:
    path = tmp / "other.json"
    path.write_text(json.dumps({"format": "something else", "weights": [1, 2, 3]}))
    return path


BAD_ARTIFACTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, "No such file"),
    "a directory": (_directory, "cannot read"),
    "empty": (_empty, "not valid JSON"),
    "truncated": (_truncated, "not valid JSON"),
    "not UTF-8": (_not_utf8, "not valid JSON"),
    "tampered": (_tampered, "content hash mismatch"),
    "wrong format": (_wrong_format, "not a malignancy-predictor/artifact file"),
    "malformed metrics": (_malformed_metrics, "stored metrics are malformed"),
}
COMMANDS = {"python -m app": PYTHON_M_APP, "uvicorn --factory": UVICORN_FACTORY}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("artifact", BAD_ARTIFACTS.values(), ids=BAD_ARTIFACTS.keys())
def test_bad_artifact_stops_startup_with_one_line(
    tmp_path: Path, artifact: tuple[Callable[[Path], Path], str], command: tuple[str, ...]
) -> None:
    make, problem = artifact
    path = make(tmp_path)
    with run_server({"MODEL_PATH": str(path)}, command=command) as server:
        code = server.process.wait(EXIT_TIMEOUT)
    log = server.stderr()
    assert code != 0, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if str(path) in line]
    assert len(errors) == 1, log  # one line names the file ...
    assert problem in errors[0], log  # ... and the problem
    assert "cannot load the model" in errors[0]
    if command is PYTHON_M_APP:
        assert log.strip() == errors[0], "python -m app must print exactly one line"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"WORKERS": "0"}, "WORKERS"),
        ({"MAX_BATCH_SIZE": "-5"}, "MAX_BATCH_SIZE"),
        ({"MAX_BODY_BYTES": "1e3"}, "MAX_BODY_BYTES"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"API_KEY": ""}, "API_KEY"),
        ({"SHUTDOWN_DRAIN_SECONDS": "-1"}, "SHUTDOWN_DRAIN_SECONDS"),
        ({"API_KEYS": ""}, "API_KEYS"),
        ({"DATABASE_URL": "postgresql://user:pa@ss#word@127.0.0.1:1/db"}, "DATABASE_URL"),
        ({"HOST": "a" * 70}, "HOST"),
    ],
)
def test_bad_setting_stops_python_m_app_with_one_line(env: dict[str, str], variable: str) -> None:
    with run_server(env) as server:
        code = server.process.wait(EXIT_TIMEOUT)
    log = server.stderr().strip()
    assert code == 2, log
    assert len(log.splitlines()) == 1, log
    assert variable in log
    assert "invalid settings" in log


def test_api_key_never_appears_in_a_settings_error() -> None:
    key = "key-value-that-must-stay-hidden"
    with run_server({"API_KEY": key, "PORT": "not-a-port"}) as server:
        server.process.wait(EXIT_TIMEOUT)
    assert "PORT" in server.stderr()
    assert key not in server.stderr()


def test_start_server_reports_a_failed_start() -> None:
    with (
        pytest.raises(ServerError, match="exited with code"),
        start_server({"MODEL_PATH": "/nonexistent/weights.json"}),
    ):
        pass


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_good_artifact_serves_with_two_workers(command: tuple[str, ...]) -> None:
    with start_server(workers=2, command=command) as server, httpx.Client() as client:
        health = client.get(f"{server.url}/health")
        assert health.status_code == 200
        assert client.post(f"{server.url}/predict", json={"x": 1}).status_code == 422
    assert server.returncode is not None  # stopped on leaving the block
    assert "Traceback" not in server.stderr()


def test_model_path_setting_selects_the_artifact(tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_bytes(DEFAULT_ARTIFACT_PATH.read_bytes())
    with start_server({"MODEL_PATH": str(copy)}) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
    assert str(copy) in server.stderr()


def test_sigterm_stops_the_server_cleanly() -> None:
    with start_server() as server:
        pass
    assert server.process.returncode is not None
    log = server.stderr()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_run_server_stops_the_server_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), run_server() as server:
        raise RuntimeError
    assert server.process.poll() is not None
