"""Running out of file descriptors does not flood the log, and the service recovers.

`python -m app` runs with RLIMIT_NOFILE lowered to NOFILE; the test holds more connections
than that allows, so that every accept fails with EMFILE for a while. asyncio's accept loop
then reports the error once per pending connection, up to its backlog, each second (the
previous edge wrote about 1,500 tracebacks a second here). Asserted: the failure is logged at
most once per RESOURCE_LOG_SECONDS (app/server/serve.py) with a count and no traceback, and
once the connections close the service answers again.
"""

import socket
import sys
import time
from typing import Final

import httpx
import pytest

from app.server.serve import RESOURCE_LOG_SECONDS
from tests.live_server import LOOPBACK, run_server, wait_healthy

NOFILE: Final = 64
HELD: Final = 120
EXHAUSTED_SECONDS: Final = 5.0
LOW_NOFILE: Final = (
    sys.executable,
    "-c",
    "import resource, runpy; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE})); "
    "runpy.run_module('app', run_name='__main__')",
)

pytestmark = pytest.mark.slow


def test_emfile_is_logged_once_per_interval_and_the_service_recovers() -> None:
    with run_server(command=LOW_NOFILE) as server:
        wait_healthy(server)
        held = []
        for _ in range(HELD):  # the kernel completes them; the server cannot accept them all
            held.append(socket.create_connection((LOOPBACK, server.port), timeout=5))
        time.sleep(EXHAUSTED_SECONDS)
        log = server.stderr()
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"{server.url}/health", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.2)

    reports = [line for line in log.splitlines() if "out of system resource" in line]
    assert 1 <= len(reports) <= EXHAUSTED_SECONDS // RESOURCE_LOG_SECONDS + 1, reports
    assert "Too many open files" in reports[0]
    assert "time(s) since the last report" in reports[0]
    assert "Traceback" not in log
    assert status == 200
