"""The Prometheus port: its own process, loopback by default, the API port's limits.

Before, the exposition ran in a thread of the worker itself with WORKERS=1 (GIL shared with the
event loop), on HOST, with no deadline, no connection cap and a backlog of 5: 500 half-sent
requests held 500 threads and 8 scrapers cut /predict's throughput 5x.
"""

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Final

import httpx
import psutil
import pytest

from app.openapi.examples import BENIGN
from tests.live_server import LOOPBACK, LiveServer, start_server
from tests.system.observability.observe import (
    listening_ports,
    metrics_process,
    raw_exchange,
    status_of,
    wait_for_metrics,
    worker_processes,
)

HEADER_TIMEOUT: Final = 1
CAP: Final = 32  # app.server.exposition.METRICS_MAX_CONNECTIONS
PREDICT_SECONDS: Final = 2.0  # the most a prediction may take while the port is attacked


def listener_address(process: psutil.Process, port: int) -> str:
    (address,) = {
        c.laddr.ip
        for c in process.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    return str(address)


def test_with_one_worker_the_exposition_is_not_in_the_worker() -> None:
    with start_server() as server:
        wait_for_metrics(server)
        (worker,) = worker_processes(server)
        assert worker.pid == server.process.pid
        assert server.metrics_port not in listening_ports(worker)
        exposition = metrics_process(server)
        assert exposition.pid != worker.pid
        assert listening_ports(exposition) == {server.metrics_port}
        assert len(worker.threads()) < 8  # no thread per scrape either


@pytest.mark.parametrize(
    ("env", "bound"),
    [({"HOST": "0.0.0.0"}, LOOPBACK), ({"METRICS_HOST": "0.0.0.0"}, "0.0.0.0")],
    ids=["loopback-by-default", "metrics-host"],
)
def test_the_exposition_binds_metrics_host_and_says_where(env: dict[str, str], bound: str) -> None:
    with start_server(env) as server:
        wait_for_metrics(server)
        assert listener_address(metrics_process(server), server.metrics_port) == bound
        assert (
            f"Serving Prometheus metrics on http://{bound}:{server.metrics_port}/metrics"
            in server.stderr()
        )


@pytest.fixture(scope="module")
def limited() -> Iterator[LiveServer]:
    with start_server({"HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)}) as server:
        wait_for_metrics(server)
        yield server


def predicts(server: LiveServer) -> float:
    started = time.monotonic()
    answer = httpx.post(f"{server.url}/predict", json=BENIGN, timeout=10)
    assert answer.status_code == 200
    return time.monotonic() - started


def test_a_half_sent_scrape_is_answered_408_within_the_header_timeout(
    limited: LiveServer,
) -> None:
    started = time.monotonic()
    raw = raw_exchange(limited.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 10)
    assert status_of(raw) == 408
    assert time.monotonic() - started < HEADER_TIMEOUT + 2


def test_connections_past_the_cap_are_refused_and_predictions_go_on(
    limited: LiveServer,
) -> None:
    held = []
    try:
        for _ in range(CAP + 20):  # dead scrapers: connected, half a request, never read
            sock = socket.create_connection((LOOPBACK, limited.metrics_port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            held.append(sock)
        time.sleep(0.3)
        extra = raw_exchange(limited.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(extra) == 503
        assert max(predicts(limited) for _ in range(20)) < PREDICT_SECONDS
    finally:
        for sock in held:
            sock.close()
    time.sleep(HEADER_TIMEOUT + 0.5)  # the held ones have timed out: a scrape gets through
    assert httpx.get(limited.metrics_url, timeout=5).status_code == 200


def test_the_backlog_is_not_five(limited: LiveServer) -> None:
    """`ss` shows a listening socket's backlog in Send-Q."""
    shown = subprocess.run(
        ["ss", "-ltnH", f"sport = :{limited.metrics_port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert int(shown[2]) >= 64, shown
