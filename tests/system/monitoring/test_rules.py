"""The alert rules and the dashboard, checked by Prometheus's own promtool.

The committed files are what scripts/monitoring_rules.py writes from app/monitoring/alarms.py;
the PrometheusRule holds the plain file's groups; `promtool check rules` accepts both the rules
and every dashboard query (as recording rules); `promtool test rules` runs each alert on
synthetic series on both sides of its limit (built from the same definitions), with undefined
(NaN) figures, and the drift and record alerts.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from app.monitoring.alarms import FIGURE_ALARMS, WINDOW, FigureAlarm
from app.monitoring.drift import DRIFT_NAMES
from app.monitoring.figures import FIGURE_NAMES
from scripts import monitoring_rules
from scripts.monitoring_rules import DASHBOARD, PROMETHEUS_RULE, RULES

# The series the service exposes for monitoring: these modules' and the record's.
KNOWN_METRICS: Final = {
    "predictor_monitoring_figure",
    "predictor_monitoring_validated",
    "predictor_monitoring_cases",
    "predictor_drift_statistic",
    "predictor_drift_threshold",
    "predictor_drift_alarm",
    "predictor_decisions_total",
    "predictor_atypical_total",
    "predictor_record_available",
    "predictor_record_failures_total",
}
METRIC_NAME: Final = re.compile(r"\b(predictor_[a-z_]+)\b")


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from PATH, or Debian's prometheus package installed for it."""
    found = shutil.which("promtool")
    if found is None:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "prometheus"]):
            subprocess.run(command, capture_output=True, check=False, timeout=600)
        found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing and Debian's prometheus package did not install")
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=120
    )


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def test_committed_files_are_what_the_script_writes() -> None:
    assert monitoring_rules.main(["--check"]) == 0


def test_the_prometheus_rule_holds_the_same_groups() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["spec"]["groups"] == rules()["groups"]


def test_promtool_accepts_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_use_only_known_series() -> None:
    for group in rules()["groups"]:
        for rule in group["rules"]:
            assert set(METRIC_NAME.findall(rule["expr"])) <= KNOWN_METRICS, rule["expr"]


# -- promtool test rules ----------------------------------------------------------------------
def annotations_of(alert: str) -> dict[str, str]:
    for group in rules()["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                found: dict[str, str] = rule["annotations"]
                return found
    raise KeyError(alert)


def labels_of(alarm: FigureAlarm) -> dict[str, str]:
    return {"figure": alarm.figure, "window": WINDOW, "bound": alarm.bound}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def figure_case(alarm: FigureAlarm, value: str, fires: bool) -> dict[str, Any]:
    """The alarm's bound held at `value` for 20 minutes; at 10 minutes (past its `for`)."""
    # the series notation repeats numbers ("0.85x20") but not NaN
    values = " ".join([value] * 21) if value == "NaN" else f"{value}x20"
    expected = []
    if fires:
        rendered = {
            k: v.replace("{{ $value }}", repr(float(value)))
            for k, v in annotations_of(alarm.alert).items()
        }
        expected = [
            {
                "exp_labels": {"severity": "warning", **labels_of(alarm)},
                "exp_annotations": rendered,
            }
        ]
    return {
        "interval": "1m",
        "input_series": [series("predictor_monitoring_figure", labels_of(alarm), values)],
        "alert_rule_test": [{"eval_time": "10m", "alertname": alarm.alert, "exp_alerts": expected}],
    }


def beyond(alarm: FigureAlarm, step: float) -> str:
    """A value `step` past the limit on the firing side (negative: on the quiet side)."""
    value = alarm.limit - step if alarm.op == "<" else alarm.limit + step
    return f"{value:.4g}"


def figure_cases() -> list[dict[str, Any]]:
    cases = []
    for alarm in FIGURE_ALARMS:
        cases.append(figure_case(alarm, beyond(alarm, 0.05), fires=True))
        cases.append(figure_case(alarm, beyond(alarm, -0.05), fires=False))
        cases.append(figure_case(alarm, f"{alarm.limit:g}", fires=False))  # at it: not past it
        cases.append(figure_case(alarm, "NaN", fires=False))  # undefined never fires
    return cases


def drift_case() -> dict[str, Any]:
    summary = annotations_of("PredictorInputDrift")
    return {
        "interval": "1m",
        "input_series": [
            series("predictor_drift_alarm", {"score": "bare_nuclei"}, "0 0 1x10"),
            series("predictor_drift_alarm", {"score": "mitoses"}, "0x12"),
        ],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "PredictorInputDrift", "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": "PredictorInputDrift",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "score": "bare_nuclei"},
                        "exp_annotations": {
                            k: v.replace("{{ $labels.score }}", "bare_nuclei")
                            for k, v in summary.items()
                        },
                    }
                ],
            },
        ],
    }


def record_case() -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [
            series("predictor_record_available", {}, "1 1 1 0x10"),
            series("predictor_record_failures_total", {}, "0x10 1 2 2x10"),
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "PredictorRecordUnavailable", "exp_alerts": []},
            {
                "eval_time": "6m",
                "alertname": "PredictorRecordUnavailable",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": annotations_of("PredictorRecordUnavailable"),
                    }
                ],
            },
            {"eval_time": "9m", "alertname": "PredictorRecordFailures", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "PredictorRecordFailures",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": annotations_of("PredictorRecordFailures"),
                    }
                ],
            },
            {"eval_time": "22m", "alertname": "PredictorRecordFailures", "exp_alerts": []},
        ],
    }


def test_every_alert_on_synthetic_series(promtool: str, tmp_path: Path) -> None:
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [*figure_cases(), drift_case(), record_case()],
    }
    path = tmp_path / "monitoring_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = run(promtool, "test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_a_wrong_expectation_fails_promtool(promtool: str, tmp_path: Path) -> None:
    """The harness can fail: an alarm expected to fire on the quiet side makes promtool fail."""
    alarm = FIGURE_ALARMS[0]
    wrong = figure_case(alarm, beyond(alarm, -0.05), fires=False)
    wrong["alert_rule_test"][0]["exp_alerts"] = figure_case(alarm, "0", fires=True)[
        "alert_rule_test"
    ][0]["exp_alerts"]
    path = tmp_path / "wrong_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": [wrong]}))
    assert run(promtool, "test", "rules", str(path)).returncode != 0


# -- the dashboard ----------------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_the_dashboard_takes_its_datasource_as_a_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    uid = "${datasource}"
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert all(target["datasource"]["uid"] == uid for target in panel["targets"])


def test_the_dashboard_shows_every_figure_and_alarm_series() -> None:
    text = " ".join(dashboard_exprs())
    for figure in FIGURE_NAMES:
        assert f'figure="{figure}"' in text
    assert set(METRIC_NAME.findall(text)) == KNOWN_METRICS
    assert len(DRIFT_NAMES) == 10


def test_promtool_accepts_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    # Grafana substitutes $window before the query reaches Prometheus: each of its values.
    window_values = ("recent", "cumulative")
    recorded = [
        {"record": f"dashboard:query_{i}_{w}", "expr": expr.replace("$window", w)}
        for i, expr in enumerate(dashboard_exprs())
        for w in window_values
    ]
    for rule in recorded:
        assert set(METRIC_NAME.findall(rule["expr"])) <= KNOWN_METRICS
        assert "$" not in rule["expr"]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    done = run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(recorded)} rules found" in done.stdout
