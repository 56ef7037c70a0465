"""The record's Prometheus metrics, named predictor_record_*.

They live in their own registry: with PROMETHEUS_MULTIPROC_DIR set (the service always sets it
before a worker starts) each worker writes them to its files and the metrics server's
MultiProcessCollector reads them with the others; the gauges say how workers combine. Without
that directory (tests in one process) `REGISTRY` holds them.
"""

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX: Final = "predictor_record"

# Why a commit failed or was refused: fixed, so that the counter's labels stay few.
FAILURE_REASONS: Final = (
    "queue_full",  # more records waiting than the queue holds: the store is far behind
    "timeout",  # the commit did not complete within the recorder's timeout
    "closed",  # the recorder is stopping or not started
    "disk_full",
    "read_only",
    "unreachable",  # the database cannot be reached or the connection broke
    "store_error",  # any other database error
)

REGISTRY: Final = CollectorRegistry()

RECORDS: Final = Counter(
    f"{PREFIX}_records_written",
    "Prediction records durably committed (one per answered request).",
    registry=REGISTRY,
)
ROWS: Final = Counter(
    f"{PREFIX}_rows_written",
    "Scored rows in the committed records (a batch counts each of its rows).",
    registry=REGISTRY,
)
GROUP_SIZE: Final = Histogram(
    f"{PREFIX}_commit_group_size",
    "Records per commit: requests that arrived together share one transaction and one flush.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
COMMIT_SECONDS: Final = Histogram(
    f"{PREFIX}_commit_seconds",
    "Time of one group commit, from the transaction's start to its durable end.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
WAIT_SECONDS: Final = Histogram(
    f"{PREFIX}_wait_seconds",
    "Per commit, the longest time one of its records waited from queued to durable: what the "
    "record adds to an answer's latency, at most (the wait for its turn, and the commit).",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
QUEUE_DEPTH: Final = Gauge(
    f"{PREFIX}_queue_depth",
    "Records waiting for the writer, summed over the live workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
FAILURES: Final = Counter(
    f"{PREFIX}_failures",
    "Records not committed (the request was answered 503), by reason.",
    ["reason"],
    registry=REGISTRY,
)
AVAILABLE: Final = Gauge(
    f"{PREFIX}_available",
    "1 while every live worker can commit records, 0 when one cannot.",
    multiprocess_mode="livemin",
    registry=REGISTRY,
)


def count_failure(reason: str, records: int = 1) -> None:
    FAILURES.labels(reason if reason in FAILURE_REASONS else "store_error").inc(records)
