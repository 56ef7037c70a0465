"""Clients that pipeline requests and never read cannot hold the service (SEND_TIMEOUT_SECONDS).

A live `python -m app` (one worker, SEND_TIMEOUT_SECONDS=2) gets ATTACKERS connections at once,
each pipelining PIPELINED requests for /openapi.json (71 KB answers) and then reading nothing,
with a small TCP window (tests/system/server/edge/wire.py), so that their answers back up in the
server's write buffer as over a slow network rather than vanish into loopback's megabytes of
socket buffers. Meanwhile one normal client keeps calling /predict, /health/live and
/health/ready. Asserted:
- every attacking connection is closed by the server at the send deadline, within a margin:
  the first cut-off comes no sooner than SEND_TIMEOUT after the first answer was written, the
  last within SEND_TIMEOUT plus a margin of the last (times from the server's own log: the
  answers themselves take the worker seconds of CPU on a loaded machine, /openapi.json costing
  about 7 ms each), and no answer beyond the first two of each was computed (the next request
  waits while the write buffer is above its high-water mark);
- the normal client got a 200 for every request throughout (its p99 is printed);
- resident memory returns to within 10% of the baseline: the highest it was after each of
  WARM_UP identical attacks before (the allocator's steady state: a burst leaves freed heap the
  process keeps, less each time; with 300 connections 80, 104, 116, 133, 134, 138 MB over five
  rounds, 130 after the seventh, too close to 10% rounds apart to test; a leak would grow every
  round; with 200, a step of some 12 MB comes once, in any round, the measured one too: when the
  measured round is over 10%, one more round tells the step from a leak, which would grow again,
  and must stay within 10% of it);
- SIGTERM in the middle of such an attack ends the server with status 0 within the drain
  (SHUTDOWN_DRAIN_SECONDS) plus the stop grace (app/server/serve.py) plus a margin.
"""

import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Final

import httpx
import psutil
import pytest

from app.openapi.examples import BENIGN
from app.server.serve import STOP_GRACE_SECONDS
from tests.live_server import LOOPBACK, LiveServer, start_server
from tests.system.server.edge.wire import small_window_socket

SEND_TIMEOUT: Final = 2.0
DRAIN: Final = 1.0
ATTACKERS: Final = 200
WARM_UP: Final = 3
PIPELINED: Final = 4
MARGIN: Final = 4.0  # a loaded 2-core machine is slow to get round 300 connections
PROBE_TIMEOUT: Final = 10.0
REQUEST: Final = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n"
ENV: Final = {"SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT), "SHUTDOWN_DRAIN_SECONDS": str(DRAIN)}

pytestmark = pytest.mark.slow


def attack(port: int) -> list[socket.socket]:
    """ATTACKERS connections, each having sent PIPELINED requests; none will read."""
    socks = []
    for _ in range(ATTACKERS):
        sock = small_window_socket()
        sock.connect((LOOPBACK, port))
        sock.sendall(REQUEST * PIPELINED)
        socks.append(sock)
    return socks


def logged_at(log: str, marker: str) -> list[float]:
    """When the server logged each line holding `marker` (seconds since the epoch)."""
    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
    times = []
    for line in log.splitlines():
        match = stamp.match(line)
        if match and marker in line:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            times.append(when.timestamp())
    return times


def connections_held(server: LiveServer) -> int:
    process = psutil.Process(server.process.pid)
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
    )


def rss_mb(server: LiveServer) -> float:
    return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


class NormalClient(threading.Thread):
    """Calls /predict and both probes in turn on one keep-alive connection until stopped."""

    PATHS: Final = ("/predict", "/health/live", "/health/ready")

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: list[tuple[str, int, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=PROBE_TIMEOUT) as client:
            while not self.stopping.is_set():
                for path in self.PATHS:
                    began = time.perf_counter()
                    if path == "/predict":
                        status = client.post(path, json=BENIGN).status_code
                    else:
                        status = client.get(path).status_code
                    self.answers.append((path, status, time.perf_counter() - began))
                time.sleep(0.02)


def wait_until_released(server: LiveServer, since: float) -> float:
    """Seconds from `since` until the server holds no attacking connection (the normal
    client's keep-alive connection aside); fails after a minute."""
    while time.monotonic() - since < 60:
        if connections_held(server) <= 1:
            return time.monotonic() - since
        time.sleep(0.1)
    pytest.fail(f"{connections_held(server)} connections still open")


def settled_rss_mb(server: LiveServer, limit: float) -> float:
    """Resident memory, waiting up to 5 s for it to fall within 10% of `limit`: freed memory
    may take a moment to show."""
    rss = rss_mb(server)
    for _ in range(20):
        if rss <= limit * 1.10:
            break
        time.sleep(0.25)
        rss = rss_mb(server)
    return rss


def attack_round(server: LiveServer) -> float:
    """One attack beside a normal client, to its end; resident memory after it."""
    beside = NormalClient(server.url)
    beside.start()
    socks = attack(server.port)
    wait_until_released(server, time.monotonic())
    beside.stopping.set()
    beside.join(PROBE_TIMEOUT * 2)
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    return rss_mb(server)


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with start_server(ENV) as live:
        assert httpx.get(f"{live.url}/openapi.json").status_code == 200  # built once, first
        yield live


def test_non_reading_clients_are_cut_off_and_the_service_answers_throughout(
    server: LiveServer,
) -> None:
    warm = NormalClient(server.url)  # the normal client's own steady state (the record's too)
    warm.start()
    time.sleep(1.0)
    warm.stopping.set()
    warm.join(PROBE_TIMEOUT * 2)
    # To the allocator's steady state, under the measured round's load.
    before = max(attack_round(server) for _ in range(WARM_UP))
    normal = NormalClient(server.url)
    normal.start()
    time.sleep(0.5)
    sent = time.monotonic()
    first_round = len(server.stderr().splitlines())
    socks = attack(server.port)
    released = wait_until_released(server, sent)
    time.sleep(0.5)
    normal.stopping.set()
    normal.join(PROBE_TIMEOUT * 2)
    for sock in socks:
        sock.close()
    after = settled_rss_mb(server, before)
    log = "\n".join(server.stderr().splitlines()[first_round:])
    again = attack_round(server) if after > before * 1.10 else None  # a step, or a leak?
    answered = logged_at(log, "GET /openapi.json 200")
    cut = logged_at(log, "(SEND_TIMEOUT_SECONDS)")

    assert len(cut) == ATTACKERS  # every one of this round, by the send deadline
    assert cut[0] - answered[0] >= SEND_TIMEOUT - 0.1
    assert cut[-1] - answered[-1] < SEND_TIMEOUT + MARGIN
    # At most two answers each: the second took the buffer past its mark, the rest waited.
    assert len(answered) <= 2 * ATTACKERS, len(answered)
    statuses = {(path, status) for path, status, _ in normal.answers}
    assert statuses == {(path, 200) for path in NormalClient.PATHS}, statuses
    if again is None:
        assert after <= before * 1.10, (before, after)
    else:  # the measured round stepped; a leak grows again in the next
        assert again <= after * 1.10, (before, after, again)
    latencies = sorted(seconds for _, _, seconds in normal.answers)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    print(
        f"\n{ATTACKERS} non-reading connections x {PIPELINED} pipelined /openapi.json: all "
        f"closed {released:.2f} s after sending, the last {cut[-1] - answered[-1]:.2f} s after "
        f"the last answer (send deadline {SEND_TIMEOUT:g} s); {len(answered)} answers computed "
        f"({answered[-1] - answered[0]:.2f} s of them) this round. "
        f"Normal client: {len(latencies)} answers, "
        f"all 200, p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms. RSS {before:.1f} MB before, {after:.1f} MB after"
        + ("." if again is None else f", {again:.1f} MB after one more round.")
    )


def test_sigterm_during_the_attack_exits_0_within_the_drain_limit(server: LiveServer) -> None:
    socks = attack(server.port)
    time.sleep(0.5)  # answers are backed up now
    began = time.monotonic()
    server.process.terminate()
    limit = DRAIN + STOP_GRACE_SECONDS + MARGIN
    try:
        status = server.process.wait(limit)
    finally:
        for sock in socks:
            sock.close()
    took = time.monotonic() - began
    assert status == 0, server.stderr()[-2000:]
    print(f"\nSIGTERM with {ATTACKERS} unread connections: exit 0 after {took:.2f} s")
