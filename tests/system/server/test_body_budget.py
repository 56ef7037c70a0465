"""A live worker under bodies built to cost: its probes keep answering within a second while
two clients send the costliest bodies we could craft (scripts/bench/body_cost.py), the bodies
it holds at once stay within MAX_BUFFERED_BODY_BYTES (503 with Retry-After past it, counted
like any answer), and its resident memory returns after a burst of large bodies."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import httpx
import psutil
import pytest

from scripts.bench.body_cost import NATIVE_SIZE, V2_SIZE, native_bodies
from scripts.bench.v2_bodies import crafted_json_bodies
from tests.live_server import LiveServer, start_server

INFER: Final = "/v2/models/malignancy-predictor/infer"
PROBES: Final = ("/health/ready", "/health/live")
PROBE_LIMIT_SECONDS: Final = 1.0
ATTACK_SECONDS: Final = 6.0
BURST: Final = 16  # concurrent 8 MiB bodies: 128 MiB asked for, four times the budget
# The V2 bodies that cost the worker most per request (body_cost.py's figures).
V2_WORST: Final = ("strings", "long_shape", "last_value_bad", "spaced_values", "big_ints")
# The native bodies that cost most: pydantic builds every key and array before it refuses.
NATIVE_WORST: Final = (("/explain", "empty_arrays"), ("/predict", "distinct_keys"))
Target = tuple[str, bytes]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with start_server({"RECORD": "false"}) as live:
        yield live


def _v2_targets() -> list[Target]:
    crafted = crafted_json_bodies(V2_SIZE)
    return [(INFER, crafted[name]) for name in V2_WORST]


def _native_targets() -> list[Target]:
    return [(route, native_bodies(route, NATIVE_SIZE)[name]) for route, name in NATIVE_WORST]


def _attacker(url: str, targets: list[Target], stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            for path, body in targets:
                answer = client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
                statuses.append(answer.status_code)


def _probe_delays(url: str, stop: threading.Event) -> list[float]:
    delays = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            for path in PROBES:
                start = time.monotonic()
                assert client.get(path).status_code == 200
                delays.append(time.monotonic() - start)
            time.sleep(0.1)
    return delays


@pytest.mark.parametrize(
    "targets",
    [
        pytest.param(_v2_targets, id="v2"),
        pytest.param(_native_targets, id="native"),
    ],
)
def test_probes_answer_while_two_clients_send_the_costliest_bodies(
    server: LiveServer, targets: Callable[[], list[Target]]
) -> None:
    bodies = targets()
    stop, statuses = threading.Event(), list[int]()
    attackers = [
        threading.Thread(target=_attacker, args=(server.url, bodies, stop, statuses))
        for _ in range(2)
    ]
    for attacker in attackers:
        attacker.start()
    with ThreadPoolExecutor(1) as pool:
        probing = pool.submit(_probe_delays, server.url, stop)
        time.sleep(ATTACK_SECONDS)
        stop.set()
        delays = probing.result()
    for attacker in attackers:
        attacker.join(60)
    assert statuses
    assert set(statuses) <= {200, 400, 422, 503}
    assert len(delays) >= 10
    assert max(delays) < PROBE_LIMIT_SECONDS, f"slowest probe {max(delays):.2f} s"


def _rss_mb(server: LiveServer) -> float:
    return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


def _burst(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    def post(body: bytes) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=120) as client:
            return client.post(INFER, content=body, headers={"Content-Type": "application/json"})

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_bodies_held_at_once_are_bounded_and_memory_returns(server: LiveServer) -> None:
    crafted = crafted_json_bodies(V2_SIZE)
    bodies = [crafted[V2_WORST[i % len(V2_WORST)]] for i in range(BURST)]
    _burst(server.url, bodies)  # warm: the allocator's first round is not the burden's
    time.sleep(1.0)
    before = _rss_mb(server)
    peak, watching = before, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not watching.is_set():
            peak = max(peak, _rss_mb(server))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    answers = [a for _ in range(2) for a in _burst(server.url, bodies)]
    watching.set()
    watcher.join()
    time.sleep(1.0)
    after = _rss_mb(server)

    busy = [a for a in answers if a.status_code == 503]
    assert {a.status_code for a in answers} <= {200, 400, 503}
    assert busy, "the budget (32 MiB) never refused a body of the 128 MiB sent at once"
    assert all(a.headers["Retry-After"] == "1" for a in busy)
    assert all("MAX_BUFFERED_BODY_BYTES" in a.json()["error"] for a in busy)
    exposition = httpx.get(server.metrics_url, timeout=10).text
    # Refused before routing, as a 413 is: counted under the "unmatched" route.
    counted = [line for line in exposition.splitlines() if "http_requests_total{" in line]
    assert any('method="POST"' in line and 'status="503"' in line for line in counted)
    # Four bodies held, the one being parsed and its values: far below 16 bodies' worth.
    assert peak - before < 200, f"peak {peak:.0f} MB from {before:.0f} MB"
    assert after <= before * 1.10, f"{before:.1f} MB before, {after:.1f} MB after"
