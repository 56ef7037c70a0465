"""The processes of `python -m app` and each other's death (app/server/process_guard.py).

- SIGKILL of the supervisor (WORKERS=2): its workers and the metrics server stop by themselves
  within a bound, and a new service binds the same ports at once (before, the orphans served on
  and a restart failed with "Address already in use").
- SIGKILL of a worker with requests in flight: its live gauges leave the exposition (before,
  the dead worker's in-flight count and memory were added to the live ones' forever).
"""

import os
import signal
import socket
import time
from pathlib import Path
from typing import Final

import psutil
from prometheus_client.mmap_dict import MmapedDict

from tests.live_server import LOOPBACK, free_port, run_server, start_server, wait_healthy
from tests.system.observability.observe import (
    children,
    scrape,
    total,
    wait_for,
    wait_for_metrics,
    wait_for_workers,
    worker_processes,
)

DRAIN_SECONDS: Final = 1.0
# The drain, a request's own time and the kernel's delivery of the parent-death signal.
ORPHANS_GONE_SECONDS: Final = DRAIN_SECONDS + 9.0
IN_FLIGHT: Final = "predictor_http_requests_in_flight"
HELD: Final = 8  # requests held in flight, spread over both workers


def test_workers_stop_when_the_supervisor_is_killed_and_a_restart_binds() -> None:
    port, metrics_port = free_port(), free_port()
    env = {"SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS), "METRICS_PORT": str(metrics_port)}
    with run_server(env, workers=2, port=port) as server:
        wait_healthy(server)
        wait_for_workers(server, 2)
        wait_for_metrics(server)
        orphans = children(server)
        assert len(orphans) >= 3  # two workers and the metrics server (and a resource tracker)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        started = time.monotonic()
        _, alive = psutil.wait_procs(orphans, timeout=ORPHANS_GONE_SECONDS)
        assert alive == [], (alive, server.stderr())
        gone_after = time.monotonic() - started
    assert gone_after < ORPHANS_GONE_SECONDS
    with run_server(env, workers=2, port=port) as again:
        wait_healthy(again)
        wait_for_metrics(again)
        assert "address already in use" not in again.stderr().lower()


def hold_requests(port: int, count: int) -> list[socket.socket]:
    """`count` /predict requests whose body never ends: in the app, waiting for it."""
    held = []
    for _ in range(count):
        sock = socket.create_connection((LOOPBACK, port))
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        held.append(sock)
    return held


def in_flight_of(directory: Path, pid: int) -> float:
    path = directory / f"gauge_livesum_{pid}.db"
    if not path.exists():
        return 0.0
    return sum(
        value
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        if IN_FLIGHT in key
    )


def test_a_killed_workers_live_gauges_leave_the_exposition(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with start_server(env, workers=2) as server:
        wait_for_workers(server, 2)
        wait_for_metrics(server)
        held = hold_requests(server.port, HELD)
        try:
            wait_for(lambda: total(scrape(server), IN_FLIGHT) == HELD, f"{HELD} in flight")
            busy = [p for p in worker_processes(server) if in_flight_of(tmp_path, p.pid) > 0]
            victim = busy[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            wait_for(
                lambda: not (tmp_path / f"gauge_livesum_{victim.pid}.db").exists(),
                "the dead worker's live gauges removed",
            )
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: total(scrape(server), IN_FLIGHT) == 0, "nothing in flight when idle")
        wait_for_workers(server, 3)  # the replacement, which samples itself every second

        def memory_is_the_live_workers() -> bool:
            memory = total(scrape(server), "process_resident_memory_bytes")
            rss = sum(p.memory_info().rss for p in worker_processes(server))
            return bool(0.8 * rss < memory < 1.2 * rss)

        wait_for(memory_is_the_live_workers, "resident memory: the live workers' only")
