"""Every exit status docs/operations.md documents for `python -m app`, caused on a real process.

Each case runs the service as a user would, with the condition the docs name, and checks the
status it exits with; the docs' table must list exactly the statuses these cases produce.
"""

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from tests.live_server import LOOPBACK, free_port, server_env, start_server

REPO: Final = Path(__file__).resolve().parents[3]
PAGE: Final = REPO / "docs" / "operations.md"
STATUS_ROW: Final = re.compile(r"^\| (\d+) \|", re.MULTILINE)


def documented_statuses() -> set[int]:
    section = PAGE.read_text(encoding="utf-8").split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    return {int(status) for status in STATUS_ROW.findall(section)}


@contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port another socket is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def exit_status(env: Mapping[str, str], *args: str) -> tuple[int, str]:
    """`python -m app ARGS` on loopback with free ports unless `env` says otherwise."""
    base = {"HOST": LOOPBACK, "PORT": str(free_port()), "METRICS_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=server_env({**base, **env}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    busy: str | None = None  # a variable whose port another socket holds
    says: str = ""  # a phrase of the one line on stderr


CASES: Final = [
    Case("--help", 0, args=("--help",)),
    Case("an argument", 2, args=("--port", "9000"), says="takes no arguments"),
    Case("a bad setting", 2, env={"PORT": "0"}, says="PORT"),
    Case("a setting of the wrong type", 2, env={"WORKERS": "many"}, says="WORKERS"),
    Case("a missing model", 1, env={"MODEL_PATH": "/nonexistent/weights.json"}, says="model"),
    Case("a taken metrics port", 1, busy="METRICS_PORT", says="address already in use"),
    Case("a taken port", 3, busy="PORT", says="address already in use"),
    Case("a taken port, 2 workers", 3, env={"WORKERS": "2"}, busy="PORT", says="in use"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_exit_status(case: Case) -> None:
    with busy_port() as port:
        env = {**case.env, **({case.busy: str(port)} if case.busy else {})}
        status, stderr = exit_status(env, *case.args)
    assert status == case.status, stderr
    assert case.says.lower() in stderr.lower(), stderr


def test_a_stop_by_sigterm_exits_0() -> None:
    with start_server() as server:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.stderr()


def test_the_docs_list_exactly_these_statuses() -> None:
    assert documented_statuses() == {case.status for case in CASES} | {0}
