"""The writer process's command line: everything on it crossed from the worker and is checked;
and the process defines no gauge (its 0 would hold the workers' `available` down)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.server.record_writer import parse_args

GOOD = [
    "--fd", "5", "--writer-id", "host:1:ab", "--max-group", "8",
    "--retry-seconds", "0.5", "--max-wal-pages", "100",
]  # fmt: skip


def with_arg(name: str, value: str) -> list[str]:
    args = list(GOOD)
    args[args.index(name) + 1] = value
    return args


def test_good_arguments_are_read() -> None:
    args = parse_args(GOOD)
    assert (args.fd, args.writer_id, args.max_group) == (5, "host:1:ab", 8)
    assert (args.retry_seconds, args.max_wal_pages, args.log_level) == (0.5, 100, "info")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("--fd", "-1"),
        ("--fd", "x"),
        ("--writer-id", "has space"),
        ("--writer-id", "a" * 257),
        ("--max-group", "0"),
        ("--retry-seconds", "nan"),
        ("--retry-seconds", "-2"),
        ("--max-wal-pages", "1.5"),
    ],
)
def test_bad_arguments_are_refused(name: str, value: str) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_args(with_arg(name, value))
    assert raised.value.code == 2


def test_a_descriptor_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / "file", "wb") as file:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.server.record_writer",
                *with_arg("--fd", str(file.fileno())),
            ],
            pass_fds=(file.fileno(),),
            capture_output=True,
            timeout=60,
            env={**os.environ, "RECORD_DIR": str(tmp_path / "record")},
        )
    assert done.returncode == 2, done.stderr
    assert b"not the worker's socket" in done.stderr
    assert not (tmp_path / "record").exists()


def test_the_writer_process_defines_no_gauge(tmp_path: Path) -> None:
    code = "import app.server.record_writer, app.record.writer, app.record.wire"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert list(tmp_path.glob("histogram_*.db"))  # its metrics are there
    assert not list(tmp_path.glob("gauge_*.db"))


def test_the_writer_process_does_not_import_the_http_server() -> None:
    """Every worker start waits for its writer's first answer: uvicorn's import (about 25 ms)
    has no use there."""
    code = (
        "import sys, app.server.record_writer, app.record.writer\n"
        "from app.observability.logs import configure_logging\n"
        "configure_logging('info', 'text'); configure_logging('info', 'json')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('uvicorn', 'fastapi')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
