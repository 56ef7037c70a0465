"""The monitoring gauges under prometheus-client's multiprocess mode, as the service runs them:
worker processes writing to PROMETHEUS_MULTIPROC_DIR, one exposition adding up their files.
The last worker to publish is what the scrape shows, one series per label set."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]

# A worker: a monitor with `n` confirmed cases, its snapshot published; prints its sensitivity.
WORKER = """
import sys
from prometheus_client import CollectorRegistry
from app.monitoring.metrics import MonitoringMetrics
from app.monitoring.state import Case, Monitor
n = int(sys.argv[1])
monitor = Monitor(window=10)
for i in range(n):
    monitor.add(Case(0.9 if i % 3 else 0.1, 1, 2, 0.5))
snap = monitor.snapshot()
MonitoringMetrics(CollectorRegistry()).publish(snap)
print(snap.overall.cumulative.sensitivity.value)
"""


def run_worker(n: int, directory: Path) -> float:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout)


def test_the_scrape_shows_the_last_published_snapshot(tmp_path: Path) -> None:
    first = run_worker(30, tmp_path)
    second = run_worker(31, tmp_path)  # another process: 21 of 31 called, not 20 of 30
    assert first != second
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    samples = [
        s
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name == "predictor_monitoring_figure"
        and s.labels == {"figure": "sensitivity", "window": "cumulative", "bound": "value"}
    ]
    assert [s.value for s in samples] == [second]
