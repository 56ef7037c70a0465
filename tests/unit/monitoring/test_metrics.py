"""The monitoring gauges and counters as a Prometheus scrape shows them: every series from the
fixed label sets, the values of the snapshot and the drift report, NaN where undefined."""

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.monitoring.drift import DRIFT_NAMES, DriftDetector
from app.monitoring.figures import FIGURE_NAMES, validated_figures
from app.monitoring.metrics import BOUNDS, WINDOWS, MonitoringMetrics
from app.monitoring.state import Case, Monitor
from model.artifact import Artifact
from model.data import Dataset

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def monitor(artifact: Artifact, dataset: Dataset) -> Monitor:
    p = artifact.predict_proba(dataset.X)
    monitor = Monitor(window=100, validated=validated_figures(artifact))
    for i in range(300):
        monitor.add(Case(float(p[i]), int(dataset.y[i]), 1 + int(p[i] > 0.5), 0.2))
    return monitor


def test_publish_sets_every_figure_bound_and_window(monitor: Monitor) -> None:
    registry = CollectorRegistry()
    metrics = MonitoringMetrics(registry)
    snap = monitor.snapshot()
    metrics.publish(snap)
    samples = scrape(registry)
    for window, figures in zip(
        WINDOWS, (snap.overall.cumulative, snap.overall.recent), strict=True
    ):
        for name in FIGURE_NAMES:
            estimate = figures.estimates()[name]
            for bound in BOUNDS:
                expected = getattr(estimate, bound)
                got = value(
                    samples, "predictor_monitoring_figure", figure=name, window=window, bound=bound
                )
                assert math.isnan(got) if expected is None else got == expected
    assert snap.validated is not None
    for name in FIGURE_NAMES:
        got = value(samples, "predictor_monitoring_validated", figure=name)
        assert got == snap.validated.estimates()[name].value
    cumulative = snap.overall.cumulative
    assert (
        value(samples, "predictor_monitoring_cases", **{"class": "benign"}) == cumulative.n_benign
    )
    assert (
        value(samples, "predictor_monitoring_cases", **{"class": "malignant"})
        == cumulative.n_malignant
    )


def test_undefined_figures_are_nan_in_the_scrape() -> None:
    registry = CollectorRegistry()
    MonitoringMetrics(registry).publish(Monitor().snapshot())
    samples = scrape(registry)
    got = value(
        samples, "predictor_monitoring_figure", figure="sensitivity", window="recent", bound="lower"
    )
    assert math.isnan(got)


def test_drift_gauges(artifact: Artifact, dataset: Dataset) -> None:
    detector = DriftDetector.from_artifact(artifact, window=200, simulations=2000)
    rows = dataset.X[:200].copy()
    rows[:, 5] = 10  # every nucleus bare: drift in bare_nuclei
    report = detector.report(rows, artifact.predict_proba(rows) > detector.threshold)
    registry = CollectorRegistry()
    MonitoringMetrics(registry).publish_drift(report)
    samples = scrape(registry)
    for name in DRIFT_NAMES:
        assert value(samples, "predictor_drift_statistic", score=name) == report.statistics[name]
        assert value(samples, "predictor_drift_threshold", score=name) == report.thresholds[name]
        assert value(samples, "predictor_drift_alarm", score=name) == report.alarms[name]
    assert value(samples, "predictor_drift_alarm", score="bare_nuclei") == 1.0


def test_decision_counters() -> None:
    registry = CollectorRegistry()
    metrics = MonitoringMetrics(registry)
    assert value(scrape(registry), "predictor_decisions_total", decision="refer") == 0.0
    metrics.count_decision("refer", atypical=True)
    metrics.count_decision("benign", atypical=False)
    metrics.count_decisions({"malignant": 3, "refer": 2, "benign": 0}, atypical=1)
    samples = scrape(registry)
    assert value(samples, "predictor_decisions_total", decision="refer") == 3.0
    assert value(samples, "predictor_decisions_total", decision="benign") == 1.0
    assert value(samples, "predictor_decisions_total", decision="malignant") == 3.0
    assert value(samples, "predictor_atypical_total") == 2.0


def test_label_values_come_from_fixed_sets(monitor: Monitor) -> None:
    registry = CollectorRegistry()
    metrics = MonitoringMetrics(registry)
    metrics.publish(monitor.snapshot())
    allowed = {
        "figure": set(FIGURE_NAMES),
        "window": set(WINDOWS),
        "bound": set(BOUNDS),
        "class": {"benign", "malignant"},
        "decision": {"benign", "malignant", "refer"},
        "score": set(DRIFT_NAMES),
    }
    for _, labels in scrape(registry):
        for key, label in labels:
            assert label in allowed[key]
