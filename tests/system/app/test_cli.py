"""`python -m app`'s command line: --help lists the settings, anything else is refused, and a
stop by SIGTERM is a normal exit."""

import signal
import subprocess
import sys

import pytest

from app.core.config import Settings
from tests.live_server import REPO_ROOT, free_port, server_env, start_server

TIMEOUT = 30.0


def run_app(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        env=server_env({"PORT": "1"}),  # were a server started, it could not bind: it fails
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_setting_with_its_default(flag: str) -> None:
    done = run_app(flag)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "usage: python -m app [--help] | python -m app audit {verify,replay,export,prune} ..."
    )
    for name, field in Settings.model_fields.items():
        # an empty default (no root path, no CORS origins) is shown as "unset", as None is
        default = "unset" if field.default in (None, "", ()) else str(field.default)
        row = [line for line in lines if line.split()[:1] == [name.upper()]]
        assert len(row) == 1, (name, done.stdout)
        assert row[0].split(None, 1)[1] == default
        assert field.description is not None
        assert f"      {field.description}" in lines


@pytest.mark.parametrize(
    "args",
    [["--port", "9000"], ["serve"], ["--help", "extra"], ["-x"], ["--HELP"], [""]],
    ids=["an option", "a word", "help and more", "a short option", "upper case", "empty"],
)
def test_any_other_argument_exits_2_with_one_line(args: list[str]) -> None:
    done = run_app(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("malignancy-predictor: takes no arguments but --help")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stop_exits_0(workers: int) -> None:
    with start_server(workers=workers) as server:
        pass  # start_server stops it with SIGTERM
    assert server.process.returncode == 0, server.stderr()
    assert "Application shutdown complete" in server.stderr()


# The service, with a SIGTERM sent to itself the moment its early handler is installed (before
# the artifact is read): the earliest stop `python -m app` promises to keep.
_STOPPED_WHILE_STARTING = """
import os, signal, sys
from app import __main__
from app.server import serve
installed = serve.EarlyStop.__init__
def install_then_stop(self):
    installed(self)
    os.kill(os.getpid(), signal.SIGTERM)
serve.EarlyStop.__init__ = install_then_stop
sys.exit(__main__.main([]))
"""


@pytest.mark.parametrize(
    ("workers", "ended"),
    [
        (1, ["Application startup complete", "Finished server process"]),  # started, stopped
        (2, ["Started parent process", "Stopping parent process"]),  # the supervisor's
    ],
)
def test_a_stop_before_the_server_runs_is_kept_and_ends_it_cleanly(
    workers: int, ended: list[str]
) -> None:
    env = {"PORT": str(free_port()), "METRICS_PORT": str(free_port()), "WORKERS": str(workers)}
    done = subprocess.run(
        [sys.executable, "-c", _STOPPED_WHILE_STARTING],
        cwd=REPO_ROOT,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # not -15: the signal did not kill it
    assert "Traceback" not in done.stderr
    assert all(line in done.stderr for line in ended), done.stderr


def test_sigterm_while_the_service_starts_stops_it() -> None:
    """A stop sent while the app is being built (before uvicorn's own handlers) used to be
    dropped: the service then served on. It now stops as soon as it has started, status 0."""
    port = free_port()
    env = server_env({"PORT": str(port), "METRICS_PORT": str(free_port())})
    with subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as service:
        assert service.stderr is not None
        for line in service.stderr:
            if "Serving Prometheus metrics" in line:  # the app is built next
                service.send_signal(signal.SIGTERM)
                break
        try:
            code = service.wait(timeout=30)
        finally:
            service.kill()
        rest = service.stderr.read()
    assert code == 0, rest
    assert "Traceback" not in rest
