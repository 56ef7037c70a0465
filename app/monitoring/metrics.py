"""The monitoring figures, drift and decisions as Prometheus metrics.

Every label value comes from a fixed set: FIGURE_NAMES, the two windows, the three bounds, the
two classes, DRIFT_NAMES, DECISIONS. Callers are not a label here (GET /monitoring has them).

Gauges use multiprocess_mode="mostrecent": under several workers each writes its own file and
the exposition shows the value written last, by whichever worker. The figures are a function of
the confirmed cases in the shared record store, so the latest computation is the one to show;
"max" or "sum" would mix the bounds of different computations (a lower bound from one worker, an
upper from another), and "liveall" would multiply the series by the workers. A figure that is
undefined (no cases of a class, an interval of one class) is NaN in the exposition: Prometheus's
"no value", which compares false in every alert rule, so an undefined figure never fires one.
"""

import math
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from app.monitoring.decision import DECISIONS, Decision
from app.monitoring.drift import DRIFT_NAMES, DriftReport
from app.monitoring.figures import FIGURE_NAMES, Estimate, Figures
from app.monitoring.state import Snapshot
from model.features import CLASS_NAMES

NAMESPACE: Final = "predictor"
WINDOWS: Final = ("cumulative", "recent")
BOUNDS: Final = ("value", "lower", "upper")


def _number(value: float | None) -> float:
    return math.nan if value is None else value


class MonitoringMetrics:
    """The monitoring series, registered on `registry` (the service's; a fresh one in tests)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(
                name,
                doc,
                labels,
                namespace=NAMESPACE,
                multiprocess_mode="mostrecent",
                registry=registry,
            )

        self.figure = gauge(
            "monitoring_figure",
            "A monitoring figure over the confirmed cases, with its 95% interval's bounds.",
            ["figure", "window", "bound"],
        )
        self.validated = gauge(
            "monitoring_validated",
            "The figure the served model was validated with (its validation rows).",
            ["figure"],
        )
        self.cases = gauge(
            "monitoring_cases", "Confirmed cases, by outcome, over all time.", ["class"]
        )
        self.drift_statistic = gauge(
            "drift_statistic", "The last drift check's statistic, by score.", ["score"]
        )
        self.drift_threshold = gauge(
            "drift_threshold", "The threshold above which a drift statistic alarms.", ["score"]
        )
        self.drift_alarm = gauge(
            "drift_alarm",
            "1 when the last drift check's statistic exceeded its threshold.",
            ["score"],
        )
        self.decisions = Counter(
            "decisions",
            "Rows answered, by decision (benign, malignant or refer).",
            ["decision"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.atypical = Counter(
            "atypical",
            "Rows whose score vector the typicality check found unlike the training rows.",
            namespace=NAMESPACE,
            registry=registry,
        )
        # Children looked up once: `labels` takes a lock and builds a key on every call.
        self._decisions = {d: self.decisions.labels(d) for d in DECISIONS}
        for d in DECISIONS:
            self._decisions[d].inc(0)  # so that every series exists from the start

    def publish(self, snapshot: Snapshot) -> None:
        """Set the figure gauges (overall, both windows) and the case counts."""
        for window, figures in zip(
            WINDOWS, (snapshot.overall.cumulative, snapshot.overall.recent), strict=True
        ):
            for name, estimate in figures.estimates().items():
                self._set_estimate(name, window, estimate)
        totals = snapshot.overall.cumulative
        self.cases.labels(CLASS_NAMES[0]).set(totals.n_benign)
        self.cases.labels(CLASS_NAMES[1]).set(totals.n_malignant)
        if snapshot.validated is not None:
            self.publish_validated(snapshot.validated)

    def _set_estimate(self, name: str, window: str, estimate: Estimate) -> None:
        for bound, value in zip(
            BOUNDS, (estimate.value, estimate.lower, estimate.upper), strict=True
        ):
            self.figure.labels(name, window, bound).set(_number(value))

    def publish_validated(self, figures: Figures) -> None:
        for name in FIGURE_NAMES:
            self.validated.labels(name).set(_number(figures.estimates()[name].value))

    def publish_drift(self, report: DriftReport) -> None:
        for name in DRIFT_NAMES:
            self.drift_statistic.labels(name).set(report.statistics[name])
            self.drift_threshold.labels(name).set(report.thresholds[name])
            self.drift_alarm.labels(name).set(float(report.alarms[name]))

    def count_decision(self, decision: Decision, atypical: bool) -> None:
        """One answered row's decision (about 1.4 us a write in multiprocess mode: a service
        that tallies its requests may prefer `count_decisions`)."""
        self._decisions[decision].inc()
        if atypical:
            self.atypical.inc()

    def count_decisions(self, decisions: dict[Decision, int], atypical: int) -> None:
        """Tallies of many rows' decisions, written once each."""
        for decision, n in decisions.items():
            if n:
                self._decisions[decision].inc(n)
        if atypical:
            self.atypical.inc(atypical)
