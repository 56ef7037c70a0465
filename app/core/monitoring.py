"""How the answers turn out, read from the record: the figures over confirmed cases, drift of
the recent inputs, and their Prometheus gauges.

Everything is computed from the store (SQLite or PostgreSQL), never on the prediction path: a
refresh reads the outcomes stored since the last one (app/core/confirmed.py, which reads them all
again whenever that could be wrong), computes the figures over every confirmed case, and the
drift window from the last recorded rows. Only the served model's records count (its artifact's
content hash): the figures are compared with that model's validated ones, and a new model starts
from no case. Refreshes never overlap: one holds the lock, and a
request that arrives meanwhile waits for it. Every worker and every replica reads the same
store, so they agree, and a restart loses nothing. `/monitoring` answers the latest refresh,
refreshing first when it is older than MONITORING_REFRESH_SECONDS or an outcome arrived since;
`keep_fresh` refreshes every MONITORING_REFRESH_SECONDS whether or not anyone asks, since the
alert rules read the gauges, not `/monitoring`.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from functools import cache
from typing import Any

from prometheus_client import REGISTRY

from app.core.confirmed import CaseFeed
from app.core.dataplane import ServedModel
from app.monitoring.drift import DriftDetector
from app.monitoring.figures import validated_figures
from app.monitoring.metrics import MonitoringMetrics
from app.monitoring.state import Monitor
from app.record.config import RecordConfig
from app.record.outcomes import recent_inputs
from app.record.store import SqlStore, StoreError, open_store

logger = logging.getLogger("app.monitoring")


@cache
def gauges() -> MonitoringMetrics:
    """The monitoring series, registered once per process."""
    return MonitoringMetrics(REGISTRY)


def empty_answer(model: ServedModel) -> dict[str, Any]:
    """/monitoring's answer with no confirmed case and no drift window yet."""
    validated = validated_figures(model.artifact, model.sets.default_confidence)
    snapshot = Monitor.rebuild([], (), 200, validated).snapshot()
    answer = snapshot.as_dict()
    answer["computed_at"] = answer["compute_seconds"] = 0.0
    answer["model_version"] = model.artifact.model_version
    answer["drift"] = None
    answer["drift_window"] = {"size": 500, "rows": 0}
    return answer


class Watch:
    """The latest monitoring figures of one process, refreshed from the record's store."""

    def __init__(
        self,
        model: ServedModel,
        config: RecordConfig,
        callers: Iterable[str],
        window: int,
        drift_window: int,
        refresh_seconds: float,
    ) -> None:
        self.model = model
        self.config = config
        self.callers = tuple(callers)
        self.window = window
        self.drift_window = drift_window
        self.refresh_seconds = refresh_seconds
        self.validated = validated_figures(model.artifact, model.sets.default_confidence)
        self._lock = threading.Lock()
        self.content_sha256 = model.artifact.content_sha256  # what the record names models by
        self.feed = CaseFeed(
            model.typicality, self.callers, window, self.validated, self.content_sha256
        )
        self._drift: DriftDetector | None = None
        self._latest: dict[str, Any] | None = None
        self.last_timings: dict[str, float] = {}  # seconds of each part of the last refresh

    def latest(self) -> dict[str, Any]:
        """The latest figures, refreshed first when outcomes arrived (through any worker: the
        store's counts say so) or they are older than refresh_seconds (blocking: call it off
        the loop)."""
        with self._lock, open_store(self.config) as store:
            latest = self._latest
            fresh = (
                latest is not None and time.time() - latest["computed_at"] < self.refresh_seconds
            )
            if latest is None or not fresh or self.feed.changed(store):
                latest = self._latest = self._refresh(store)
            return latest

    def _refresh(self, store: SqlStore) -> dict[str, Any]:
        started = time.perf_counter()
        monitor = self.feed.update(store)
        rows, probabilities = recent_inputs(store, self.drift_window, self.content_sha256)
        read = time.perf_counter()
        snapshot = monitor.snapshot()
        computed = time.perf_counter()
        drift = self._drift_report(rows, probabilities)
        self.last_timings = {
            "read": read - started,
            "snapshot": computed - read,
            "drift": time.perf_counter() - computed,
        }
        metrics = gauges()
        metrics.publish(snapshot)
        metrics.publish_validated(self.validated)
        if drift is not None:
            metrics.publish_drift(drift)
        answer = snapshot.as_dict()
        answer["computed_at"] = snapshot.computed_at
        answer["model_version"] = self.model.artifact.model_version
        answer["drift"] = None if drift is None else asdict(drift)
        answer["drift_window"] = {"size": self.drift_window, "rows": len(rows)}
        return answer

    def drift_detector(self) -> DriftDetector:
        """The detector; its thresholds take seconds to simulate: once, when first needed."""
        if self._drift is None:
            self._drift = DriftDetector.from_artifact(self.model.artifact, self.drift_window)
        return self._drift

    def _drift_report(self, rows: Any, probabilities: Any) -> Any:
        if len(rows) < self.drift_window:
            return None  # not a full window yet
        drift = self.drift_detector()
        drift.clear()
        drift.add_rows(rows, probabilities)
        return drift.check()


async def keep_fresh(watch: Watch) -> None:
    """Refresh `watch` (and so the gauges) now and every refresh_seconds, in a thread, until
    cancelled. A store that cannot be read is logged once, until it can be again; any other
    failure is logged and the next round tries again: the refresh never stops the service."""
    failing: str | None = None
    while True:
        try:
            await asyncio.to_thread(watch.latest)
        except StoreError as exc:
            if failing != exc.reason:
                logger.warning("monitoring: the record cannot be read (%s); retrying", exc)
            failing = exc.reason
        except Exception:
            logger.exception("monitoring: the refresh failed; retrying")
            failing = "error"
        else:
            if failing is not None:
                logger.info("monitoring: the record can be read again")
            failing = None
        await asyncio.sleep(watch.refresh_seconds)
