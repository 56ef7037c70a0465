"""Start the real service (uvicorn in a subprocess) on a free loopback port, for tests and tools.

    from tests.live_server import start_server

    with start_server({"API_KEY": "secret"}, workers=2) as server:
        httpx.get(f"{server.url}/health")
        ...
    print(server.stderr())          # everything the server wrote to stderr (logs)
    print(server.process.returncode)

`start_server` runs `python -m app` with HOST=127.0.0.1, a free PORT, a free METRICS_PORT (the
Prometheus exposition, at `server.metrics_url`) and WORKERS=workers, on
top of the current environment without any of the service's own variables (MODEL_PATH, API_KEY,
...), so a developer's shell cannot change what a test sees; `env` adds or overrides variables.
It waits until /health answers 200, yields a `LiveServer`, and on exit stops the server with
SIGTERM (then SIGKILL after `stop_timeout` seconds). stderr goes to a file, never a pipe, so a
chatty server cannot block on a full pipe.

`run_server` starts the same command without waiting for it, for tests of servers that must
refuse to start.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from app.core.config import Settings

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LOOPBACK: Final = "127.0.0.1"
# Every setting of the service (derived from Settings, so a new one is covered at once), plus
# prometheus-client's own directory variable and the uvicorn CLI's variables.
SERVICE_VARIABLES: Final = (
    *(name.upper() for name in Settings.model_fields),
    "PROMETHEUS_MULTIPROC_DIR",
    "UVICORN_APP",
    "UVICORN_FACTORY",
    "UVICORN_HOST",
    "UVICORN_PORT",
    "UVICORN_WORKERS",
)
PYTHON_M_APP: Final = (sys.executable, "-m", "app")
UVICORN_FACTORY: Final = (sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app")


class ServerError(RuntimeError):
    """The server exited or never became healthy; the message includes its stderr."""


@dataclass
class LiveServer:
    url: str  # e.g. "http://127.0.0.1:40123", no trailing slash
    port: int
    process: "subprocess.Popen[bytes]"
    stderr_path: Path
    metrics_port: int = 0  # 0: no metrics server

    final_stderr: str | None = None  # kept when the server stops and its log file is removed
    record_dir: Path | None = None  # where its record of predictions is (SQLite)

    def stderr(self) -> str:
        """What the server has written to stderr (and stdout) so far: logs and errors."""
        if self.final_stderr is not None:
            return self.final_stderr
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def metrics_url(self) -> str:
        """The Prometheus exposition, e.g. "http://127.0.0.1:40124/metrics"."""
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def server_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment minus the service's variables, plus `env`. The record's folder
    is kept: under pytest it is the session's (tests/conftest.py), never the checkout's."""
    base = {k: v for k, v in os.environ.items() if k.upper() not in SERVICE_VARIABLES}
    if "RECORD_DIR" in os.environ:
        base["RECORD_DIR"] = os.environ["RECORD_DIR"]
    base["PYTHONUNBUFFERED"] = "1"
    base.update(env or {})
    return base


@contextmanager
def run_server(
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    command: Sequence[str] = PYTHON_M_APP,
    port: int | None = None,
    stop_timeout: float = 10.0,
) -> Iterator[LiveServer]:
    """Start the server and yield at once (no health check); stop it on exit."""
    port = free_port() if port is None else port
    where = {"HOST": LOOPBACK, "PORT": str(port), "WORKERS": str(workers)}
    # The uvicorn CLI reads UVICORN_<OPTION>; `python -m app` reads HOST, PORT and WORKERS.
    uvicorn_cli = {f"UVICORN_{name}": value for name, value in where.items()}
    # Never the default 9464: servers of parallel tests (and other checkouts) would collide.
    metrics = {"METRICS_PORT": str(free_port())}
    full_env = server_env(
        {**where, **metrics, **uvicorn_cli, "UVICORN_NO_ACCESS_LOG": "true", **(env or {})}
    )
    with tempfile.TemporaryDirectory(prefix="live-server-") as tmp:
        # The record in the test's own folder, never the checkout's var/record.
        if "RECORD_DIR" not in (env or {}):
            full_env["RECORD_DIR"] = str(Path(tmp) / "record")
        stderr_path = Path(tmp) / "stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                list(command),
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own process group, so workers can be stopped too
            )
        metrics_port = int(full_env["METRICS_PORT"]) if full_env["METRICS_PORT"].isdigit() else 0
        server = LiveServer(f"http://{LOOPBACK}:{port}", port, process, stderr_path, metrics_port)
        server.record_dir = Path(full_env["RECORD_DIR"])
        try:
            yield server
        finally:
            stop(process, stop_timeout)
            server.final_stderr = server.stderr()


def stop(process: "subprocess.Popen[bytes]", timeout: float = 10.0) -> None:
    """SIGTERM (a graceful uvicorn shutdown), then SIGKILL to the process group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)


def wait_healthy(server: LiveServer, timeout: float = 30.0) -> None:
    """Poll /health until it answers 200; ServerError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                raise ServerError(
                    f"server exited with code {server.returncode}:\n{server.stderr()}"
                )
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise ServerError(f"server not healthy after {timeout} s:\n{server.stderr()}")


@contextmanager
def start_server(
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    command: Sequence[str] = PYTHON_M_APP,
    startup_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[LiveServer]:
    """Start the service, wait until /health answers, yield it, then stop it.

    A port taken by someone else between choosing and binding is retried on a new port.
    """
    for attempt in range(3):
        with run_server(env, workers, command, stop_timeout=stop_timeout) as server:
            try:
                wait_healthy(server, startup_timeout)
            except ServerError:
                if attempt < 2 and "address already in use" in server.stderr().lower():
                    continue
                raise
            yield server
            return
    raise AssertionError("unreachable")
