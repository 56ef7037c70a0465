"""The record's gauges, set by each worker's Recorder and never defined in a writer process.

In multiprocess mode a gauge writes its first value to its process's file when it is defined;
a writer process that imported these would hold `available` at 0 (the minimum over processes)
and add its own 0 to the queue depth. So they live apart from app/record/metrics.py, which
both sides import.
"""

from typing import Final

from prometheus_client import Gauge

from app.record.metrics import PREFIX, REGISTRY

QUEUE_DEPTH: Final = Gauge(
    f"{PREFIX}_queue_depth",
    "Records waiting for the writer, summed over the live workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
AVAILABLE: Final = Gauge(
    f"{PREFIX}_available",
    "1 while every live worker can commit records, 0 when one cannot.",
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
