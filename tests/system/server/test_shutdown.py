"""Graceful shutdown: SIGTERM during load loses no request the server accepted.

A real server (`python -m app`) gets 16 keep-alive clients posting /predict/batch (1,000 rows,
so several requests are always queued or running) and /predict without a pause, and 4 that
pause 0.25 s after each answer, so their connections are idle when the shutdown begins and
their next request comes during it; SIGTERM arrives mid-load.
uvicorn alone closes at once every connection whose last answer is complete, and a request its
client has just sent there is dropped unread (a reset). With the drain (SHUTDOWN_DRAIN_SECONDS,
1 s by default, 5 s here) the server stops accepting, answers what arrives on its open
connections with `Connection: close`, and shuts down once they have closed. So, with one worker
and with two:
- every request written to a connection got a 200 with a valid prediction: none was reset,
  dropped, or a 5xx, however close to the signal it was sent, before or after;
- the server ended every connection itself, with `Connection: close`;
- some requests were in flight at SIGTERM and some were sent after it (else the test proved
  nothing), and they completed;
- the server shuts down on its own: its lifespan completes and uvicorn finishes (a single
  worker re-raises the SIGTERM it caught, so the exit status is -SIGTERM, or 0).
With one worker the clients reconnect when closed, as pooled clients do: those connections are
refused (not accepted, so not lost). With two, they do not: between the first and the last
worker closing their shared listening socket, a new connection could be queued by the kernel and
then reset, a request no worker ever accepted but that its client could not tell from a lost one.

With SHUTDOWN_DRAIN_SECONDS=0 (uvicorn's own behaviour) the server must still shut down cleanly
under load; the requests it resets there are counted, not asserted on.
"""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Final

import pytest

from tests.live_server import LOOPBACK, LiveServer, start_server
from tests.load_client import CONNECT, Expected, LoadResult, Outcome, run_load

CONNECTIONS: Final = 16
BATCH_EVERY: Final = 2
IDLE_CONNECTIONS: Final = 4
THINK_SECONDS: Final = 0.25
LOAD_BEFORE_SIGNAL: Final = 2.0
EXIT_TIMEOUT: Final = 30.0
STARTUP_TIMEOUT: Final = 30.0
# Longer than the 1 s default, so that a slow machine cannot make the deadline a flake: the drain
# ends as soon as the last connection closes, which takes a fraction of a second here.
DRAIN: Final = {"SHUTDOWN_DRAIN_SECONDS": "5"}

pytestmark = pytest.mark.slow


async def load_then_sigterm(
    port: int, pid: int, expected: Expected, reconnect: bool
) -> tuple[LoadResult, float]:
    # Half the connections post batches: a 1,000-row request takes milliseconds of server time.
    busy = expected.plans(CONNECTIONS, batch_every=BATCH_EVERY)
    idle = expected.plans(IDLE_CONNECTIONS, batch_every=BATCH_EVERY)
    load = asyncio.gather(
        run_load(LOOPBACK, port, busy, expected.check, 60.0, reconnect=reconnect),
        run_load(
            LOOPBACK, port, idle, expected.check, 60.0, reconnect=reconnect, think=THINK_SECONDS
        ),
    )
    await asyncio.sleep(LOAD_BEFORE_SIGNAL)
    signalled_at = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    results = await load
    return LoadResult([o for result in results for o in result.outcomes]), signalled_at


def wait_for_workers(server: LiveServer, workers: int) -> None:
    """/health answers once one worker is up: wait for all, so that each one drains."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while server.stderr().count("Application startup complete") < workers:
        assert time.monotonic() < deadline, f"{workers} workers not up:\n{server.stderr()}"
        time.sleep(0.05)


def sigterm_under_load(
    expected: Expected, workers: int, reconnect: bool, env: Mapping[str, str] | None = None
) -> tuple[LoadResult, float, int, str]:
    """(the load's outcomes, when SIGTERM was sent, the exit status, the server's stderr)."""
    with start_server(env, workers=workers) as server:
        wait_for_workers(server, workers)
        result, signalled_at = asyncio.run(
            load_then_sigterm(server.port, server.process.pid, expected, reconnect)
        )
        try:
            code = server.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running {EXIT_TIMEOUT} s after SIGTERM")
        stderr = server.stderr()
    return result, signalled_at, code, stderr


def assert_answers_valid(result: LoadResult) -> None:
    server_errors = [o for o in result.completed if o.status is not None and o.status >= 500]
    assert not server_errors, [(o.path, o.status) for o in server_errors[:5]]
    assert not result.non_2xx, [(o.path, o.status) for o in result.non_2xx[:5]]
    assert not result.invalid, [(o.path, o.problem) for o in result.invalid[:5]]


def assert_shut_down_cleanly(code: int, stderr: str, workers: int) -> None:
    # A stop by SIGTERM is a normal exit, with one worker or several.
    assert code == 0, f"exit {code}\n{stderr}"
    assert stderr.count("Application shutdown complete") == workers, stderr
    assert stderr.count("Finished server process") == workers, stderr
    assert "Traceback" not in stderr, stderr


def when(outcomes: list[Outcome], signalled_at: float) -> list[tuple[str, float, str | None]]:
    return [(o.path, round(o.sent_at - signalled_at, 3), o.error) for o in outcomes[:5]]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_load_loses_no_accepted_request(expected: Expected, workers: int) -> None:
    reconnect = workers == 1
    result, signalled_at, code, stderr = sigterm_under_load(expected, workers, reconnect, DRAIN)

    assert_answers_valid(result)
    # Every request written to a connection was answered: the drain's whole point.
    assert not result.lost, when(result.lost, signalled_at)
    unanswered = [o for o in result.outcomes if o.path != CONNECT and o.status != 200]
    assert not unanswered, when(unanswered, signalled_at)
    # Only new connections may fail, and only by being refused, after the signal.
    failed_connects = [o for o in result.errors if not o.refused]
    assert not failed_connects, when(failed_connects, signalled_at)
    assert all(o.sent_at > signalled_at for o in result.refused), when(result.refused, signalled_at)
    clients = CONNECTIONS + IDLE_CONNECTIONS
    assert len(result.refused) == (clients if reconnect else 0)
    # The server told every client to go, rather than dropping idle connections.
    closing = [o for o in result.completed if o.closing]
    assert len(closing) == clients, when(closing, signalled_at)

    in_flight = [o for o in result.completed if o.sent_at < signalled_at < o.done_at]
    assert in_flight, "no request was in flight at SIGTERM: the test proved nothing"
    after = [o for o in result.completed if o.sent_at > signalled_at]
    assert after, "no request was sent after SIGTERM: the drain was not tested"
    assert_shut_down_cleanly(code, stderr, workers)
    assert stderr.count("Draining") == workers, stderr
    drained = max(o.done_at for o in result.completed) - signalled_at
    print(
        f"\n{workers} worker(s): {len(result.completed)} answers, {len(in_flight)} in flight at "
        f"SIGTERM and {len(after)} sent after it, all 200, the last {drained:.3f} s after it; "
        f"{len(result.refused)} reconnections refused"
    )


def test_without_a_drain_sigterm_during_load_still_shuts_down_cleanly(
    expected: Expected,
) -> None:
    env = {"SHUTDOWN_DRAIN_SECONDS": "0"}
    result, signalled_at, code, stderr = sigterm_under_load(expected, 1, True, env)

    assert_answers_valid(result)
    in_flight = [o for o in result.completed if o.sent_at < signalled_at < o.done_at]
    assert in_flight, "no request was in flight at SIGTERM: the test proved nothing"
    assert_shut_down_cleanly(code, stderr, 1)
    assert "Draining" not in stderr, stderr
    kinds = sorted({(o.error or "").split("(")[0] for o in result.lost})
    print(
        f"\nno drain: {len(result.completed)} answers, {len(in_flight)} in flight at SIGTERM; "
        f"{len(result.lost)} requests lost ({', '.join(kinds)}), sent at "
        f"{[round(o.sent_at - signalled_at, 3) for o in result.lost]} s from the signal"
    )
