"""The gauges the alert rules read follow the outcomes without anyone asking /monitoring: each
worker refreshes them every MONITORING_REFRESH_SECONDS, with one worker and with two."""

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import LiveServer, start_server

REFRESH_SECONDS = 1
DEADLINE_SECONDS = 30.0  # a loaded CI machine: the refresh itself is due within 2 s


def confirmed_cases(server: LiveServer) -> dict[str, float]:
    """predictor_monitoring_cases by class, as Prometheus would scrape them ({} before any)."""
    text = httpx.get(server.metrics_url, timeout=10).text
    return {
        sample.labels["class"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "predictor_monitoring_cases"
        for sample in family.samples
    }


def wait_for(server: LiveServer, expected: dict[str, float]) -> dict[str, float]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    seen = confirmed_cases(server)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = confirmed_cases(server)
    return seen


@pytest.mark.parametrize("workers", [1, 2])
def test_gauges_follow_outcomes_without_a_request_to_monitoring(
    dataset: Dataset, workers: int
) -> None:
    env = {"MONITORING_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    with (
        start_server(env, workers=workers) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert wait_for(server, {"benign": 0.0, "malignant": 0.0}) == {
            "benign": 0.0,
            "malignant": 0.0,
        }, "the gauges are published at start, before any outcome"
        rows = [dict(zip(FEATURE_NAMES, map(int, r), strict=True)) for r in dataset.X[:60]]
        answer = client.post("/predict/batch", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["X-Request-ID"]
        truth = [("benign", "malignant")[int(y)] for y in dataset.y[:60]]
        outcomes = [
            {"request_id": request_id, "row": i, "outcome": outcome}
            for i, outcome in enumerate(truth)
        ]
        assert client.post("/feedback/batch", json={"outcomes": outcomes}).status_code == 200
        expected = {name: float(truth.count(name)) for name in ("benign", "malignant")}
        assert min(expected.values()) > 0
        assert wait_for(server, expected) == expected
