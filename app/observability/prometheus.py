"""The service's Prometheus metrics (prometheus-client), and what records them.

Every label value comes from a fixed set: route templates of the app (or "unmatched"), HTTP
methods (or "other"), status codes, the two class names, and error types the code names. So the
number of series is bounded whatever clients send.

Under `python -m app` the values live in files in PROMETHEUS_MULTIPROC_DIR
(app/observability/metrics_dir.py), which the exposition (app/server/exposition.py) adds
up over all workers. In a process without that
variable (tests, a bare uvicorn) they live in the process, in `REGISTRY`.

Labelled children are looked up once per label set and kept: `labels(...)` takes a lock and
builds a key each call, about 1 us that /predict would pay several times.

A request does not write the values itself. It adds to this worker's `Tally`, plain Python
numbers, and the tally writes everything it holds at most FLUSH_SECONDS later, in one pass: one
write per series that changed, however many requests changed it. Each write to a value costs
about 1.4 us in files (a lock, a pid check, a struct packed into the mmap); a /predict made seven
(in flight up and down, its count, its duration's bucket and sum, its class, its row), which was
15% of the instructions of a /predict in process (75,000 of 500,000, measured with
valgrind's instruction count); with the tally it is about 3%. The price: a scrape sees a
request at most FLUSH_SECONDS after its answer, and a worker killed with SIGKILL loses the
counts of its last FLUSH_SECONDS (a normal stop writes them: `process_sampler`).
"""

import asyncio
import contextlib
import functools
import os
import resource
from bisect import bisect_left
from collections import Counter as Tallies
from collections.abc import AsyncIterator
from contextvars import ContextVar
from http import HTTPStatus
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from app.observability import metrics_store
from model.features import CLASS_NAMES

# Before any metric exists: a full or read-only PROMETHEUS_MULTIPROC_DIR costs series, not the
# worker (app/observability/metrics_store.py).
metrics_store.install()

NAMESPACE: Final = "predictor"
# Bounded by the app's routes; "unmatched" is every path no route matched (404s).
UNMATCHED: Final = "unmatched"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "other"
# /predict answers in about 0.1 ms; the default buckets (5 ms and up) would put every request in
# the first one.
DURATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
SAMPLE_SECONDS: Final = 1.0  # how often each worker records its memory and CPU
FLUSH_SECONDS: Final = 0.01  # the longest a request's counts wait to be written
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")
_STATM: Final = Path("/proc/self/statm")

REGISTRY: Final = CollectorRegistry()

# First, so that its own series gets space while there is some.
LOST_SERIES: Final = Counter(
    "metrics_lost_series",
    "Series a worker keeps in memory only, missing here, because PROMETHEUS_MULTIPROC_DIR refused"
    " them (full, read-only, gone).",
    namespace=NAMESPACE,
    registry=REGISTRY,
)
metrics_store.LOST.on_lost = LOST_SERIES.inc
LOG_LINES_LOST: Final = Counter(
    "log_lines_lost",
    "Log lines a process could not write (a closed or broken stderr, a full disk).",
    namespace=NAMESPACE,
    registry=REGISTRY,
)

REQUESTS: Final = Counter(
    "http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
DURATION: Final = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to its answer's end, by route template.",
    ["route"],
    namespace=NAMESPACE,
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT: Final = Gauge(
    "http_requests_in_flight",
    "HTTP requests being answered now, over all workers.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
PREDICTIONS: Final = Counter(
    "predictions",
    "Rows classified, by class (a batch counts each of its rows).",
    ["class"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
ROWS_SCORED: Final = Counter(
    "rows_scored",
    "Rows scored, by route template (a batch counts each of its rows).",
    ["route"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
ERRORS: Final = Counter(
    "errors",
    "Error answers, by status and the type of their first problem (the JSON error's type).",
    ["status", "type"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
MODEL_INFO: Final = Gauge(
    "model_info",
    "Always 1; the served model's version is its label.",
    ["version"],
    namespace=NAMESPACE,
    multiprocess_mode="max",
    registry=REGISTRY,
)
RESIDENT_MEMORY: Final = Gauge(
    "process_resident_memory_bytes",
    "Resident memory of the workers, summed over the live ones.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CPU_SECONDS: Final = Counter(
    "process_cpu_seconds",
    "User and system CPU time of the workers, summed over every worker this server ran.",
    registry=REGISTRY,
)


@functools.cache
def request_series(route: str, method: str, status: int) -> Counter:
    method = method if method in METHODS else OTHER_METHOD
    return REQUESTS.labels(route, method, str(status))


@functools.cache
def _duration_series(route: str) -> Histogram:
    return DURATION.labels(route)


@functools.cache
def _prediction_series(route: str) -> tuple[dict[str, Counter], Counter]:
    by_class = {name: PREDICTIONS.labels(name) for name in CLASS_NAMES}
    return by_class, ROWS_SCORED.labels(route)


@functools.cache
def _error_series(status: int, kind: str) -> Counter:
    return ERRORS.labels(str(status), kind)


def observe_all(histogram: Histogram, amounts: list[float]) -> None:
    """`histogram.observe(a)` for each amount, with one write per bucket hit and one for the sum.

    prometheus-client has no call for many observations, so this uses its Histogram's own parts
    (`_upper_bounds`, `_buckets`, `_sum`, as its `observe` does; pinned in constraints.txt);
    tests/system/observability/test_telemetry.py holds the result to that of `observe`, one amount
    at a time.
    """
    bounds = histogram._upper_bounds  # observe's rule: the first bucket whose bound >= amount
    for index, count in Tallies(bisect_left(bounds, amount) for amount in amounts).items():
        histogram._buckets[index].inc(count)
    histogram._sum.inc(sum(amounts))


class Tally:
    """This worker's counts since it last wrote them to the Prometheus values (see above).

    Recording is a few dictionary updates; `flush` writes them all, and is scheduled on the
    running event loop FLUSH_SECONDS after the first record that finds the tally clean. Without
    a running loop (a script, a test) each record is written at once.
    """

    def __init__(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.flush_seconds = flush_seconds
        self.in_flight = 0
        self.requests: Tallies[tuple[str, str, int]] = Tallies()
        self.durations: dict[str, list[float]] = {}
        self.predictions: Tallies[tuple[str, str]] = Tallies()  # (route, class) -> rows
        self.errors: Tallies[tuple[int, str]] = Tallies()
        self._written_in_flight = 0
        self._pending: asyncio.TimerHandle | None = None

    def started(self) -> None:
        self.in_flight += 1
        self._dirty()

    def finished(self, route: str, method: str, status: int, seconds: float) -> None:
        """A request answered with `status` (an error answer is counted under its type too)."""
        self.in_flight -= 1
        self.requests[route, method, status] += 1
        if status >= 400:
            self.errors[status, error_kind(status)] += 1
        durations = self.durations.get(route)
        if durations is None:
            self.durations[route] = [seconds]
        else:
            durations.append(seconds)
        self._dirty()

    def abandoned(self) -> None:
        """A request the app saw whose answer someone else wrote (the edge counted it)."""
        self.in_flight -= 1
        self._dirty()

    def predicted(self, route: str, class_name: str, rows: int = 1) -> None:
        self.predictions[route, class_name] += rows
        self._dirty()

    def failed(self, status: int, kind: str) -> None:
        self.errors[status, kind] += 1
        self._dirty()

    def _dirty(self) -> None:
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to wait on: write now
            self.flush()
            return
        self._pending = loop.call_later(self.flush_seconds, self.flush)

    def flush(self) -> None:
        """Write what the tally holds to the Prometheus values, and empty it. The durations go
        last, so that a scrape that sees a request's duration sees its other counts too."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        requests, self.requests = self.requests, Tallies()
        errors, self.errors = self.errors, Tallies()
        predictions, self.predictions = self.predictions, Tallies()
        durations, self.durations = self.durations, {}
        for (route, method, status), count in requests.items():
            request_series(route, method, status).inc(count)
        for (status, kind), count in errors.items():
            _error_series(status, kind).inc(count)
        for (route, class_name), rows in predictions.items():
            by_class, scored = _prediction_series(route)
            by_class[class_name].inc(rows)
            scored.inc(rows)
        for route, seconds in durations.items():
            observe_all(_duration_series(route), seconds)
        if self.in_flight != self._written_in_flight:
            IN_FLIGHT.set(self.in_flight)
            self._written_in_flight = self.in_flight


TALLY: Final = Tally()


def record_prediction(route: str, class_name: str) -> None:
    TALLY.predicted(route, class_name)


def record_predictions(route: str, class_names: list[str]) -> None:
    for name in CLASS_NAMES:
        if count := class_names.count(name):
            TALLY.predicted(route, name, count)


def record_lost_log_line() -> None:
    LOG_LINES_LOST.inc()


def record_error(status: int, kind: str) -> None:
    TALLY.failed(status, kind)


# The type of the error answer the request's code built (its first problem's JSON type), for the
# count made from the status actually sent (app/middleware/observed.py). Each request runs in its
# own task with its own copy of the context, so nothing carries over to the next request.
_error_kind: ContextVar[str | None] = ContextVar("error_kind", default=None)
CLIENT_CLOSED: Final = 499  # nginx's status for a client that left before its answer
CLIENT_CLOSED_KIND: Final = "client_closed_request"
# The route of an answer the edge (app/server/edge.py) wrote itself, before any route ran.
EDGE_ROUTE: Final = "edge"


def note_error(kind: str) -> None:
    """Name the type of the error answer this request is about to send."""
    _error_kind.set(kind)


def error_kind(status: int) -> str:
    """The type to count an error answer of `status` under: the one noted, else one named after
    the status (an error answer built without a type: V2's, Starlette's own)."""
    if status == CLIENT_CLOSED:
        return CLIENT_CLOSED_KIND
    return _error_kind.get() or _status_kind(status)


@functools.cache
def _status_kind(status: int) -> str:
    if status == 500:  # the type of the service's own 500 answer, sent outside the middleware
        return "internal_error"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"status_{status}"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def record_edge_answer(status: int, kind: str, method: str) -> None:
    """Count an answer the edge wrote itself (a refusal: 400, 408, 413, 414, 431, 503...)."""
    TALLY.requests[EDGE_ROUTE, method if method in METHODS else OTHER_METHOD, status] += 1
    TALLY.failed(status, kind)


def record_model(version: str) -> None:
    MODEL_INFO.labels(version).set(1)


class ProcessSampler:
    """Records this worker's resident memory, and the CPU time it used since the last sample."""

    def __init__(self) -> None:
        self.cpu_recorded = 0.0

    def sample(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):  # no /proc: memory unknown
            RESIDENT_MEMORY.set(int(_STATM.read_text().split()[1]) * _PAGE_BYTES)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        if used > self.cpu_recorded:
            CPU_SECONDS.inc(used - self.cpu_recorded)
            self.cpu_recorded = used


@contextlib.asynccontextmanager
async def process_sampler(interval: float = SAMPLE_SECONDS) -> AsyncIterator[None]:
    """Sample this worker's memory and CPU every `interval` seconds while the context is open;
    at its end, take this worker out of the live gauges (prometheus-client's own cleanup)."""

    sampler = ProcessSampler()

    async def sample_forever() -> None:
        while True:
            sampler.sample()
            await asyncio.sleep(interval)

    task = asyncio.create_task(sample_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        TALLY.flush()  # this worker's last requests
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            with contextlib.suppress(OSError):  # a read-only or vanished directory: nothing to do
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
