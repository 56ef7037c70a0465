"""The record's Prometheus metrics, named predictor_record_*.

They live in their own registry: with PROMETHEUS_MULTIPROC_DIR set (the service always sets it
before a worker starts) each worker writes them to its files and the metrics server's
MultiProcessCollector reads them with the others; the gauges say how workers combine. Without
that directory (tests in one process) `REGISTRY` holds them.

The writer process (app/record/writer.py) counts the commits; the worker's Recorder the waits
and refusals (each refused answer once, whichever side failed it), and it alone has the gauges
(app/record/gauges.py): in multiprocess mode a gauge writes its 0 to the process's file as soon
as it is defined, and the writer's 0 would be the minimum of `available` for good.
"""

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

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
    "writer_lost",  # the worker's writer process ended; the next commit starts another
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
FAILURES: Final = Counter(
    f"{PREFIX}_failures",
    "Records not committed (the request was answered 503), by reason.",
    ["reason"],
    registry=REGISTRY,
)


def count_failure(reason: str, records: int = 1) -> None:
    FAILURES.labels(reason if reason in FAILURE_REASONS else "store_error").inc(records)
