"""The Prometheus exposition of a real `python -m app` on loopback, with one worker and with two.

Each test sends a known set of requests and reads the counts back from the metrics port with
prometheus-client's own parser: with two workers the numbers must add up over both on every
scrape (prometheus-client's multiprocess mode). `promtool check metrics` (Debian's
`prometheus` package) lints the exposition, and a real Prometheus scrapes the service and
answers a PromQL query over its HTTP API with the expected count.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics_dir import ENV_VAR
from app.openapi.examples import BENIGN, MALIGNANT
from app.server.exposition import PROCESS_NAME as METRICS_PROCESS_NAME
from model.artifact import Artifact
from tests.live_server import LOOPBACK, LiveServer, free_port, run_server, start_server
from tests.system_tools import require_tool

WAIT_SECONDS: Final = 20.0
PROMETHEUS_WAIT_SECONDS: Final = 90.0
STARTUP_SECONDS: Final = 30.0
BAD_SCORE: Final = {**BENIGN, "mitoses": 11}  # 422, type less_than_equal
N_BENIGN: Final = 24
N_MALIGNANT: Final = 16
N_INVALID: Final = 5
N_UNKNOWN: Final = 4
BATCH: Final = [BENIGN, MALIGNANT, MALIGNANT]
N_BATCHES: Final = 3

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer) -> str:
    response = httpx.get(server.metrics_url, timeout=10)
    response.raise_for_status()
    return response.text


def samples(text: str) -> Samples:
    """{(sample name, labels): value} for every sample of the exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def wait_for_workers(server: LiveServer, workers: int) -> None:
    """/health answers once one worker is up; wait for every one, so that each can serve."""
    wait_for(
        lambda: server.stderr().count("Application startup complete") >= workers,
        f"{workers} workers up:\n{server.stderr()}",
        STARTUP_SECONDS,
    )


def worker_processes(server: LiveServer) -> list[psutil.Process]:
    """The processes serving requests: the server itself, or the workers uvicorn spawned (not
    multiprocessing's resource tracker, also a child)."""
    parent = psutil.Process(server.process.pid)
    children = [
        p
        for p in parent.children()
        if "spawn_main" in " ".join(p.cmdline()) and p.name() != METRICS_PROCESS_NAME
    ]
    return children or [parent]


def send(url: str, method: str, path: str, body: Any = None) -> int:
    """One request on a connection of its own, so that the kernel spreads them over workers."""
    with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as client:
        return client.request(method, path, json=body).status_code


def send_known_requests(url: str) -> None:
    requests = (
        [("POST", "/predict", BENIGN, 200)] * N_BENIGN
        + [("POST", "/predict", MALIGNANT, 200)] * N_MALIGNANT
        + [("POST", "/predict", BAD_SCORE, 422)] * N_INVALID
        + [("POST", "/predict/batch", {"instances": BATCH}, 200)] * N_BATCHES
        + [("GET", f"/no/such/{i}-{os.urandom(4).hex()}", None, 404) for i in range(N_UNKNOWN)]
    )
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda r: send(url, r[0], r[1], r[2]), requests))
    assert statuses == [r[3] for r in requests]


@pytest.fixture(scope="module", params=[1, 2], ids=["1 worker", "2 workers"])
def counted(request: pytest.FixtureRequest) -> Iterator[tuple[LiveServer, int, Samples]]:
    """A server that has answered exactly the known requests; its scrape once all are counted."""
    workers: int = request.param
    with start_server({"LOG_FORMAT": "json"}, workers=workers) as server:
        wait_for_workers(server, workers)
        send_known_requests(server.url)
        expected = N_BENIGN + N_MALIGNANT + N_INVALID
        # Each request is recorded just after its answer is sent: wait until the last one is.
        wait_for(
            lambda: (
                value(
                    samples(scrape(server)),
                    "predictor_http_request_duration_seconds_count",
                    route="/predict",
                )
                == expected
            ),
            f"{expected} /predict requests counted:\n{scrape(server)}",
        )
        yield server, workers, samples(scrape(server))


def test_requests_are_counted_by_route_method_and_status(
    counted: tuple[LiveServer, int, Samples],
) -> None:
    _, _, found = counted
    requests = "predictor_http_requests_total"
    predicted = N_BENIGN + N_MALIGNANT
    assert value(found, requests, route="/predict", method="POST", status="200") == predicted
    assert value(found, requests, route="/predict", method="POST", status="422") == N_INVALID
    assert value(found, requests, route="/predict/batch", method="POST", status="200") == N_BATCHES
    assert value(found, requests, route="unmatched", method="GET", status="404") == N_UNKNOWN
    assert value(found, "predictor_http_requests_in_flight") == 0


def test_no_label_value_comes_from_the_client(counted: tuple[LiveServer, int, Samples]) -> None:
    _, _, found = counted
    routes = {
        dict(labels)["route"] for _, labels in found if "route" in dict(labels)
    }  # the unknown paths all count as one
    assert routes <= {"/predict", "/predict/batch", "/health", "unmatched"}, routes
    assert not any("/no/such" in route for route in routes)


def test_predictions_count_every_row_by_class(counted: tuple[LiveServer, int, Samples]) -> None:
    _, _, found = counted
    batch_benign = N_BATCHES * BATCH.count(BENIGN)
    batch_malignant = N_BATCHES * BATCH.count(MALIGNANT)
    assert value(found, "predictor_predictions_total", **{"class": "benign"}) == (
        N_BENIGN + batch_benign
    )
    assert value(found, "predictor_predictions_total", **{"class": "malignant"}) == (
        N_MALIGNANT + batch_malignant
    )
    rows = "predictor_rows_scored_total"
    assert value(found, rows, route="/predict") == N_BENIGN + N_MALIGNANT
    assert value(found, rows, route="/predict/batch") == N_BATCHES * len(BATCH)


def test_errors_are_counted_by_status_and_type(counted: tuple[LiveServer, int, Samples]) -> None:
    _, _, found = counted
    errors = "predictor_errors_total"
    assert value(found, errors, status="422", type="less_than_equal") == N_INVALID
    assert value(found, errors, status="404", type="not_found") == N_UNKNOWN
    assert sum(v for (name, _), v in found.items() if name == errors) == N_INVALID + N_UNKNOWN


def test_durations_fall_in_sub_millisecond_buckets(
    counted: tuple[LiveServer, int, Samples],
) -> None:
    _, _, found = counted
    name = "predictor_http_request_duration_seconds"
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (sample, labels), count in found.items()
        if sample == f"{name}_bucket" and dict(labels)["route"] == "/predict"
    )
    bounds = [bound for bound, _ in buckets]
    assert bounds[:3] == [0.0001, 0.00025, 0.0005], bounds
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert (
        counts[-1]
        == value(found, f"{name}_count", route="/predict")
        == N_BENIGN + N_MALIGNANT + N_INVALID
    )
    assert 0 < value(found, f"{name}_sum", route="/predict") < 45.0


def test_model_info_names_the_served_version(
    counted: tuple[LiveServer, int, Samples], artifact: Artifact
) -> None:
    _, _, found = counted
    infos = {
        dict(labels)["version"]: v
        for (name, labels), v in found.items()
        if name == "predictor_model_info"
    }
    assert infos == {artifact.model_version: 1.0}


def test_memory_and_cpu_add_up_over_the_workers(counted: tuple[LiveServer, int, Samples]) -> None:
    server, workers, _ = counted
    processes = worker_processes(server)
    assert len(processes) == workers
    wait_for(  # each worker samples itself every second
        lambda: value(samples(scrape(server)), "process_resident_memory_bytes") > 0,
        "memory sampled",
    )
    found = samples(scrape(server))
    rss = sum(p.memory_info().rss for p in processes)
    memory = value(found, "process_resident_memory_bytes")
    assert 0.8 * rss < memory < 1.2 * rss, (memory, rss)
    cpu_now = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    cpu = value(found, "process_cpu_seconds_total")
    assert 0 < cpu <= cpu_now + 0.05, (cpu, cpu_now)


def test_both_workers_served_and_the_scrape_adds_them_up(
    counted: tuple[LiveServer, int, Samples],
) -> None:
    server, workers, found = counted
    access = [json.loads(line) for line in server.stderr().splitlines() if '"app.access"' in line]
    pids = {line["pid"] for line in access if line["route"] == "/predict"}
    assert len(pids) == workers, f"the /predict requests were served by {pids}"
    total = value(
        found, "predictor_http_requests_total", route="/predict", method="POST", status="200"
    )
    assert total == N_BENIGN + N_MALIGNANT  # not one worker's share


def test_promtool_accepts_the_exposition(counted: tuple[LiveServer, int, Samples]) -> None:
    promtool = require_tool("promtool", "prometheus")
    server, _, _ = counted
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape(server),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout  # no lint problem either


def prometheus_config(target: str) -> str:
    return json.dumps(  # JSON is YAML
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "predictor", "static_configs": [{"targets": [target]}]}
            ],
        }
    )


def query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def wait_until_ready(url: str, timeout: float = 60.0) -> None:
    """Until Prometheus says it is ready: before that its API answers 503 in plain text."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"Prometheus at {url} not ready in {timeout:g} s"
        time.sleep(0.2)


@pytest.fixture
def prometheus() -> Iterator[Callable[[str], str]]:
    """Start a real Prometheus scraping a target; yields `start(target) -> its URL`."""
    binary = require_tool("prometheus", "prometheus")
    with tempfile.TemporaryDirectory(prefix="prometheus-test-") as tmp:
        processes: list[subprocess.Popen[bytes]] = []

        def start(target: str) -> str:
            config = Path(tmp) / "prometheus.yml"
            config.write_text(prometheus_config(target))
            port = free_port()
            with (Path(tmp) / "prometheus.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            binary,
                            f"--config.file={config}",
                            f"--storage.tsdb.path={Path(tmp) / 'data'}",
                            f"--web.listen-address={LOOPBACK}:{port}",
                        ],
                        stdout=log,
                        stderr=log,
                    )
                )
            url = f"http://{LOOPBACK}:{port}"
            wait_until_ready(url)
            return url

        try:
            yield start
        finally:
            for process in processes:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def test_a_real_prometheus_scrapes_the_counts(prometheus: Callable[[str], str]) -> None:
    with start_server(workers=2) as server:
        url = prometheus(f"{LOOPBACK}:{server.metrics_port}")
        wait_for_workers(server, 2)
        for body in [BENIGN] * 7 + [MALIGNANT] * 5:
            assert send(server.url, "POST", "/predict", body) == 200
        promql = 'sum(predictor_http_requests_total{route="/predict",status="200"})'

        def scraped_all() -> bool:
            try:
                result = query(url, promql)
            except httpx.HTTPError:
                return False  # Prometheus still starting
            return bool(result) and float(result[0]["value"][1]) == 12

        wait_for(scraped_all, f"Prometheus answering 12 for {promql}", PROMETHEUS_WAIT_SECONDS)
        up = query(url, 'up{job="predictor"}')
        assert [float(series["value"][1]) for series in up] == [1.0]
        malignant = query(url, 'predictor_predictions_total{class="malignant"}')
        assert [float(series["value"][1]) for series in malignant] == [5.0]


def test_metrics_port_zero_serves_no_exposition() -> None:
    with start_server({"METRICS_PORT": "0"}) as server:
        listening = {
            c.laddr.port
            for c in psutil.Process(server.process.pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {server.port}


def test_a_taken_metrics_port_stops_startup_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with run_server({"METRICS_PORT": str(port)}) as server:
            code = server.process.wait(STARTUP_SECONDS)
            lines = server.stderr().strip().splitlines()
    assert code == 1
    assert lines == [
        f"malignancy-predictor: cannot serve metrics on {LOOPBACK}:{port} (METRICS_HOST,"
        " METRICS_PORT): Address already in use; set METRICS_PORT to a free port, or"
        " METRICS_PORT=0 for none"
    ]


def test_a_given_directory_is_emptied_of_an_earlier_runs_counts(tmp_path: Path) -> None:
    # An earlier run's worker wrote counts into the directory and was killed.
    earlier = (
        "from app.observability import prometheus as telemetry\n"
        "for _ in range(1000): telemetry.record_prediction('/predict', 'benign')\n"
    )
    env = {**os.environ, ENV_VAR: str(tmp_path)}
    subprocess.run([sys.executable, "-c", earlier], env=env, check=True, timeout=60)
    assert list(tmp_path.glob("counter_*.db"))
    with start_server({ENV_VAR: str(tmp_path)}) as server:
        assert send(server.url, "POST", "/predict", MALIGNANT) == 200
        wait_for(
            lambda: (
                value(samples(scrape(server)), "predictor_rows_scored_total", route="/predict") == 1
            ),
            "the one prediction counted",
        )
        found = samples(scrape(server))
    assert value(found, "predictor_predictions_total", **{"class": "benign"}) == 0
    assert value(found, "predictor_predictions_total", **{"class": "malignant"}) == 1


def test_the_private_directory_is_removed_at_exit() -> None:
    with start_server(workers=2) as server:
        wait_for_workers(server, 2)
        worker = worker_processes(server)[0]
        directory = Path(worker.environ()[ENV_VAR])
        assert directory.is_dir()
        assert list(directory.glob("*.db"))
        assert directory.stat().st_mode & 0o077 == 0, "readable by other users"
    assert not directory.exists()


def test_a_directory_left_by_a_killed_service_is_removed_by_the_next_start() -> None:
    """SIGKILL skips the removal at exit: the next start removes what the dead one left."""
    with start_server(workers=2) as killed:
        wait_for_workers(killed, 2)
        directory = Path(worker_processes(killed)[0].environ()[ENV_VAR])
        family = [psutil.Process(killed.process.pid)]
        family += family[0].children(recursive=True)
        for process in family:
            process.kill()
        psutil.wait_procs(family, timeout=10)
    assert list(directory.glob("*.db")), "nothing was left to remove"
    with start_server() as server:
        assert send(server.url, "POST", "/predict", MALIGNANT) == 200
        assert not directory.exists()


def test_python_m_app_imports_prometheus_client_only_after_setting_the_directory() -> None:
    # prometheus_client picks file or in-process storage when first imported.
    code = "import sys, app.__main__; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


REFUSED_BEFORE_ROUTING: Final = [
    pytest.param({"content": b"{" + b" " * 2048 + b"}"}, "", 413, id="body too large"),
    pytest.param({"json": BENIGN, "headers": {"Content-Encoding": "gzip"}}, "", 415, id="encoding"),
    pytest.param({"json": BENIGN}, "?threshold=0.5&threshold=0.6", 422, id="query given twice"),
]


@pytest.mark.parametrize(("request_args", "query", "status"), REFUSED_BEFORE_ROUTING)
def test_a_refusal_before_routing_counts_and_logs_under_its_route(
    request_args: dict[str, Any], query: str, status: int
) -> None:
    """The body limit, the Content-Encoding check and the strict query string answer before the
    router runs: their refusals of /predict are /predict's, in the metrics and the access log,
    while a path no route takes stays "unmatched"."""
    env = {"LOG_FORMAT": "json", "MAX_BODY_BYTES": "1024"}
    with start_server(env) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        headers = {"Content-Type": "application/json", **request_args.pop("headers", {})}
        refused = client.post("/predict" + query, headers=headers, **request_args)
        assert refused.status_code == status, refused.text
        assert client.get("/no/such/path").status_code == 404
        requests = "predictor_http_requests_total"
        wait_for(
            lambda: (
                value(
                    samples(scrape(server)), requests, route="unmatched", method="GET", status="404"
                )
                == 1
            ),
            "the 404 counted",
        )
        found = samples(scrape(server))
        assert value(found, requests, route="/predict", method="POST", status=str(status)) == 1
        assert value(found, requests, route="unmatched", method="POST", status=str(status)) == 0
        lines = [
            json.loads(line) for line in server.stderr().splitlines() if '"app.access"' in line
        ]
        routes = {line["request_id"]: line["route"] for line in lines}
        assert routes[refused.headers["X-Request-ID"]] == "/predict"
