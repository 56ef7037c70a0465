"""Every alert rule and dashboard query, evaluated by a real Prometheus scraping a live service
that has answered predictions and received outcomes: each expression parses and evaluates
without error, and the monitoring, drift and record series they read are there."""

import json
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import LOOPBACK, REPO_ROOT, start_server

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboard.json"
# Series the expressions read, which must have been scraped before they are evaluated.
NEEDED = (
    "predictor_monitoring_figure",
    "predictor_drift_alarm",
    "predictor_record_available",
)


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _resolved(expr: str) -> str:
    """A dashboard query with its variables given values, as Grafana would."""
    return expr.replace("$window", "recent").replace("$__rate_interval", "1m")


def dashboard_expressions() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found[where] = (
                    node["expr"].replace("${datasource}", "").replace("$__rate_interval", "1m")
                )
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")), "dashboard")
    return found


def evaluate(url: str, promql: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    body: dict[str, Any] = answer.json()
    return body


def test_every_rule_and_dashboard_query_evaluates_on_live_series(
    prometheus: Any, dataset: Dataset, tmp_path: Path
) -> None:
    expressions = {**rule_expressions(), **dashboard_expressions()}
    assert len(expressions) >= 8
    env = {
        "RECORD_DIR": str(tmp_path / "record"),
        "DRIFT_WINDOW": "100",
        "MONITORING_REFRESH_SECONDS": "1",
    }
    with start_server(env) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        rows = [dict(zip(FEATURE_NAMES, map(int, r), strict=True)) for r in dataset.X[:200]]
        answer = client.post("/predict/batch", json={"instances": rows})
        request_id = answer.headers["X-Request-ID"]
        outcomes = [
            {"request_id": request_id, "row": i, "outcome": ("benign", "malignant")[int(y)]}
            for i, y in enumerate(dataset.y[:200])
        ]
        assert client.post("/feedback/batch", json={"outcomes": outcomes}).status_code == 200
        assert client.get("/monitoring").status_code == 200  # computes and publishes the gauges
        url = prometheus(f"{LOOPBACK}:{server.metrics_port}")
        deadline = time.monotonic() + 90
        while True:
            try:
                present = {
                    name: bool(evaluate(url, name).get("data", {}).get("result")) for name in NEEDED
                }
            except httpx.HTTPError:
                present = {}
            if present and all(present.values()):
                break
            assert time.monotonic() < deadline, f"series not scraped: {present}"
            time.sleep(1)
        for where, promql in expressions.items():
            result = evaluate(url, promql)
            assert result["status"] == "success", (where, promql, result)
            assert "error" not in result, (where, result)
