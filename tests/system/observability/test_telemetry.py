"""app/observability/prometheus.py: the tally writes what a request would have written, in
fewer writes, and soon.

These run in the test process, whose metrics live in memory (no PROMETHEUS_MULTIPROC_DIR);
tests/system/observability/test_prometheus.py counts the same series across worker processes
over HTTP.
"""

import asyncio
import random
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from app.observability import prometheus as telemetry
from app.observability.prometheus import DURATION_BUCKETS, REGISTRY, Tally, observe_all

ROUTE = "/test/telemetry"  # a route no other test records, so counts start at zero


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"predictor_{name}", labels) or 0.0


def histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("d", "d", buckets=DURATION_BUCKETS, registry=registry)


def values(registry: CollectorRegistry) -> dict[tuple[str, str | None], float]:
    """Each bucket's, the count's and the sum's value (not the creation time)."""
    return {
        (s.name, s.labels.get("le")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@pytest.mark.parametrize(
    "amounts",
    [
        [0.00005],
        list(DURATION_BUCKETS),  # each on a bound: observe counts it in that bucket (<=)
        [b * 1.000001 for b in DURATION_BUCKETS],  # each just past a bound
        [0.0, 11.0, 1e9],  # below the first bucket and past the last bound (+Inf)
        [random.Random(seed).lognormvariate(-8, 2) for seed in range(2000)],
    ],
    ids=["one", "on the bounds", "past the bounds", "extremes", "2,000 random"],
)
def test_observe_all_matches_observe_one_at_a_time(amounts: list[float]) -> None:
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    h1, h2 = histogram(one_by_one), histogram(at_once)
    for amount in amounts:
        h1.observe(amount)
    observe_all(h2, amounts)
    first, second = values(one_by_one), values(at_once)
    sums = {key for key in first if key[0] == "d_sum"}
    assert {k: v for k, v in first.items() if k not in sums} == {
        k: v for k, v in second.items() if k not in sums
    }
    for key in sums:
        assert second[key] == pytest.approx(first[key], rel=1e-12)
    assert second["d_count", None] == len(amounts)


@pytest.fixture
def tally() -> Iterator[Tally]:
    tally = Tally(flush_seconds=0.05)
    yield tally
    tally.flush()


def test_without_an_event_loop_each_record_is_written_at_once(tally: Tally) -> None:
    before = sample("rows_scored_total", route=ROUTE)
    tally.predicted(ROUTE, "malignant", 3)
    assert sample("rows_scored_total", route=ROUTE) == before + 3
    assert tally._pending is None


def test_in_a_loop_records_wait_for_one_flush(tally: Tally) -> None:
    labels = {"route": ROUTE, "method": "POST", "status": "200"}
    requests = sample("http_requests_total", **labels)
    durations = sample("http_request_duration_seconds_count", route=ROUTE)
    benign = sample("predictions_total", **{"class": "benign"})

    async def scenario() -> tuple[float, float, float]:
        for _ in range(10):
            tally.started()
            tally.predicted(ROUTE, "benign")
            tally.finished(ROUTE, "POST", 200, 0.0003)
        held = sample("http_requests_total", **labels)
        await asyncio.sleep(tally.flush_seconds * 4)
        return held, sample("http_requests_total", **labels), tally.in_flight

    held, written, in_flight = asyncio.run(scenario())
    assert held == requests, "nothing is written before the flush"
    assert written == requests + 10
    assert sample("http_request_duration_seconds_count", route=ROUTE) == durations + 10
    assert sample("predictions_total", **{"class": "benign"}) == benign + 10
    assert in_flight == 0


def test_the_in_flight_gauge_counts_requests_not_yet_finished(tally: Tally) -> None:
    async def scenario() -> tuple[float, float]:
        tally.started()
        tally.started()
        await asyncio.sleep(tally.flush_seconds * 4)
        during = sample("http_requests_in_flight")
        tally.finished(ROUTE, "GET", 200, 0.001)
        tally.finished(ROUTE, "GET", 200, 0.001)
        await asyncio.sleep(tally.flush_seconds * 4)
        return during, sample("http_requests_in_flight")

    during, after = asyncio.run(scenario())
    assert (during, after) == (2, 0)


def test_one_write_per_series_however_many_requests(
    tally: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[float] = []
    counter = telemetry.request_series(ROUTE, "GET", 204)
    monkeypatch.setattr(counter, "inc", writes.append)

    async def scenario() -> None:
        for _ in range(500):
            tally.started()
            tally.finished(ROUTE, "GET", 204, 0.0001)
        await asyncio.sleep(tally.flush_seconds * 4)

    asyncio.run(scenario())
    assert writes == [500]


def test_a_flush_with_nothing_recorded_writes_nothing(
    tally: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry.IN_FLIGHT, "set", lambda _: pytest.fail("in flight written"))
    tally.flush()
