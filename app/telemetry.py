"""The service's Prometheus metrics (prometheus-client), and what records them.

Every label value comes from a fixed set: route templates of the app (or "unmatched"), HTTP
methods (or "other"), status codes, the two class names, and error types the code names. So the
number of series is bounded whatever clients send.

Under `python -m app` the values live in files in PROMETHEUS_MULTIPROC_DIR (app/metrics_dir.py),
which the exposition (app/metrics_server.py) adds up over all workers. In a process without that
variable (tests, a bare uvicorn) they live in the process, in `REGISTRY`.

Labelled children are looked up once per label set and kept: `labels(...)` takes a lock and
builds a key each call, about 1 us that /predict would pay several times.
"""

import asyncio
import contextlib
import functools
import os
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from model.features import CLASS_NAMES

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
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")
_STATM: Final = Path("/proc/self/statm")

REGISTRY: Final = CollectorRegistry()

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
def request_series(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    method = method if method in METHODS else OTHER_METHOD
    return REQUESTS.labels(route, method, str(status)), DURATION.labels(route)


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    requests, duration = request_series(route, method, status)
    requests.inc()
    duration.observe(seconds)


@functools.cache
def _prediction_series(route: str) -> tuple[dict[str, Counter], Counter]:
    by_class = {name: PREDICTIONS.labels(name) for name in CLASS_NAMES}
    return by_class, ROWS_SCORED.labels(route)


def record_prediction(route: str, class_name: str) -> None:
    by_class, rows = _prediction_series(route)
    by_class[class_name].inc()
    rows.inc()


def record_predictions(route: str, class_names: list[str]) -> None:
    by_class, rows = _prediction_series(route)
    for name, counter in by_class.items():
        if count := class_names.count(name):
            counter.inc(count)
    rows.inc(len(class_names))


@functools.cache
def _error_series(status: int, kind: str) -> Counter:
    return ERRORS.labels(str(status), kind)


def record_error(status: int, kind: str) -> None:
    _error_series(status, kind).inc()


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
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
