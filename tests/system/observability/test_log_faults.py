"""A log that cannot be written (a closed stderr pipe, a full disk) costs log lines, not answers.

The service's stderr is a pipe whose reader goes away, or a file on a 64 KiB tmpfs that fills
up. Predictions must all be answered, no worker may die, and the lines lost are counted in
`predictor_log_lines_lost_total` (the metrics directory is elsewhere).
"""

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import httpx
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LOOPBACK, REPO_ROOT, free_port, server_env
from tests.system.observability.observe import fill, small_tmpfs, total, wait_for

PREDICTIONS: Final = 200
STALLED_ROUNDS: Final = 5  # 1,000 access lines, about 130 KB: twice the pipe
LOST: Final = "predictor_log_lines_lost_total"


@contextmanager
def service(
    stderr: int | IO[bytes], workers: int
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    port, metrics_port = free_port(), free_port()
    # The record in a folder of its own, never the checkout's var/record.
    with tempfile.TemporaryDirectory(prefix="log-faults-record-") as record:
        env = server_env(
            {
                "RECORD_DIR": record,
                "HOST": LOOPBACK,
                "PORT": str(port),
                "METRICS_PORT": str(metrics_port),
                "WORKERS": str(workers),
            }
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://{LOOPBACK}:{port}"
        try:
            yield process, url, f"http://{LOOPBACK}:{metrics_port}/metrics"
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def healthy(url: str, workers: int) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, "the service healthy", 60)
    time.sleep(2.0 * workers)  # the other workers come up too


def predict_all(url: str) -> int:
    with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as client:
        return sum(
            client.post("/predict", json=BENIGN).status_code == 200 for _ in range(PREDICTIONS)
        )


def lost_lines(metrics_url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.system.observability.observe import Samples

    text = httpx.get(metrics_url, timeout=5).text
    found: Samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return total(found, LOST)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stderr_pipe_nobody_reads_any_more(workers: int) -> None:
    with service(subprocess.PIPE, workers) as (process, url, metrics_url):
        healthy(url, workers)
        assert process.stdout is not None  # stderr too
        process.stdout.close()  # the reader goes: every write is now EPIPE
        assert predict_all(url) == PREDICTIONS
        assert process.poll() is None
        wait_for(lambda: lost_lines(metrics_url) >= PREDICTIONS, "lost lines counted")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stderr_pipe_nobody_reads_from(workers: int) -> None:
    """Before, a worker stopped answering once the 64 KiB pipe was full (588 predictions)."""
    with service(subprocess.PIPE, workers) as (process, url, _):
        healthy(url, workers)
        for _ in range(STALLED_ROUNDS):  # the pipe fills; the rest waits in the worker's queue
            assert predict_all(url) == PREDICTIONS
        assert process.poll() is None
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_under_the_log(workers: int) -> None:
    with (
        small_tmpfs() as directory,
        (directory / "service.log").open("wb") as log,
        service(log, workers) as (process, url, metrics_url),
    ):
        healthy(url, workers)
        fill(directory)
        assert predict_all(url) == PREDICTIONS
        assert process.poll() is None
        wait_for(lambda: lost_lines(metrics_url) > 0, "lost lines counted")
        assert Path(directory / "service.log").stat().st_size > 0
