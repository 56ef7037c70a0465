"""Every exit status of `python -m app` is listed by --help, and each is what the process really
ends with in a case that must produce it (a real busy port, a real missing artifact, ...)."""

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.live_server import LOOPBACK, REPO_ROOT, run_server, server_env, start_server

TIMEOUT = 60.0
Outcome = tuple[int, str]  # exit status, stderr


@contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port someone else is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def exited(env: dict[str, str] | None = None, workers: int = 1, port: int | None = None) -> Outcome:
    """Run `python -m app` until it exits by itself (it must refuse to start)."""
    with run_server(env, workers=workers, port=port) as server:
        status = server.process.wait(TIMEOUT)
    return status, server.stderr()


def stopped_by_sigterm() -> Outcome:
    with start_server() as server:
        pass  # start_server stops it with SIGTERM
    return int(server.process.returncode), server.stderr()


def with_argument() -> Outcome:
    done = subprocess.run(
        [sys.executable, "-m", "app", "--port", "1"],
        cwd=REPO_ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return done.returncode, done.stderr


def http_port_busy(workers: int) -> Callable[[], Outcome]:
    def case() -> Outcome:
        with busy_port() as port:
            return exited(workers=workers, port=port)

    return case


def metrics_port_busy() -> Outcome:
    with busy_port() as port:
        return exited({"METRICS_PORT": str(port)})


CASES = [
    pytest.param(0, stopped_by_sigterm, "Application shutdown complete", id="sigterm"),
    pytest.param(
        1,
        lambda: exited({"MODEL_PATH": "/nonexistent/weights.json"}),
        "cannot load the model",
        id="no artifact",
    ),
    pytest.param(1, metrics_port_busy, "METRICS_PORT", id="metrics port busy"),
    pytest.param(2, lambda: exited({"PORT": "eighty"}), "PORT", id="bad setting"),
    pytest.param(2, with_argument, "takes no arguments", id="an argument"),
    pytest.param(3, http_port_busy(1), "address already in use", id="port busy"),
    pytest.param(3, http_port_busy(2), "address already in use", id="port busy, 2 workers"),
]


def listed_statuses() -> dict[int, str]:
    """The statuses `python -m app --help` lists, with their meaning."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        cwd=REPO_ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    section = done.stdout.split("\nExit status:\n", 1)[1]
    return {int(m[1]): m[2] for m in re.finditer(r"(?m)^  (\d+) +(.+)$", section)}


def test_the_cases_below_cover_every_listed_status() -> None:
    covered = {param.values[0] for param in CASES}
    assert set(listed_statuses()) == covered


@pytest.mark.parametrize(("status", "case", "said"), CASES)
def test_python_m_app_exits_with_the_listed_status(
    status: int, case: Callable[[], Outcome], said: str
) -> None:
    assert status in listed_statuses()
    code, stderr = case()
    assert code == status, stderr
    assert said.lower() in stderr.lower(), stderr
