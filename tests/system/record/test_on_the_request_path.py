"""The record on the request path of a live service: every route records what it answered,
nothing answered is missing after a SIGKILL under load, and the service fails closed and
recovers by itself when the record cannot be written.

The guarantees under load run against SQLite and a real PostgreSQL (the `config` fixture: a
fresh folder or a fresh database per test); failing closed is shown on a real small tmpfs for
SQLite and by stopping and starting a real PostgreSQL server of the test's own."""

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.record.audit import verify
from app.record.config import RecordConfig
from app.record.store import open_store
from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import LiveServer, start_server
from tests.postgres import PostgresServer
from tests.system.record.conftest import fill

KEY = "s3cret-key-for-tests"
# The Open Inference Protocol's readiness probes, which say what /health/ready says.
V2_READY = ("/v2/health/ready", "/v2/models/malignancy-predictor/ready")
V2_INFER = "/v2/models/malignancy-predictor/infer"
CRASH_ROUNDS = 4  # per worker count: each round is a SIGKILL at a random moment under load
LOAD_THREADS = 4


def case(row: np.ndarray) -> dict[str, int]:
    return dict(zip(FEATURE_NAMES, (int(v) for v in row), strict=True))


def stored(config: RecordConfig) -> dict[str, tuple[int, str | None, str | None, str]]:
    """request_id -> (rows, caller, case_ref, route) of every stored record."""
    with open_store(config) as store:
        rows = store.execute("SELECT request_id, n_rows, caller, case_ref, route FROM records")
    return {r[0]: (int(r[1]), r[2], r[3], r[4]) for r in rows}


def service_env(config: RecordConfig) -> dict[str, str]:
    """The service's variables that put its record where `config` says."""
    env = {"RECORD_DIR": str(config.record_dir)}
    if config.database_url:
        env["DATABASE_URL"] = config.database_url
    return env


def missing_from(config: RecordConfig, answered: dict[str, int]) -> list[str]:
    """Requests answered 200 whose record is absent or has another number of rows."""
    record = stored(config)
    return [rid for rid, n in answered.items() if record.get(rid, (0,))[0] != n]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    record_dir = tmp_path_factory.mktemp("record")
    env = {"API_KEYS": f"clinic-a={KEY},clinic-b=other-key", "RECORD_DIR": str(record_dir)}
    with start_server(env) as live:
        yield live


def test_every_route_records_what_it_answered(keyed: LiveServer, dataset: Dataset) -> None:
    rows = dataset.X[:5]
    headers = {"X-API-Key": KEY, "X-Case-Reference": "ward-7/case:0042"}
    with httpx.Client(base_url=keyed.url, headers=headers, timeout=30) as client:
        sent = {
            "/predict": client.post("/predict", json=case(rows[0])),
            "/predict/batch": client.post(
                "/predict/batch", json={"instances": [case(r) for r in rows]}
            ),
            "/explain": client.post("/explain", json=case(rows[1])),
            V2_INFER: client.post(
                V2_INFER,
                json={
                    "inputs": [
                        {
                            "name": "scores",
                            "datatype": "INT64",
                            "shape": [3, 9],
                            "data": rows[:3].ravel().tolist(),
                        }
                    ]
                },
            ),
        }
    assert {route: answer.status_code for route, answer in sent.items()} == dict.fromkeys(sent, 200)
    record = stored(RecordConfig(keyed.record_dir or Path()))
    for route, answer in sent.items():
        n, caller, case_ref, stored_route = record[answer.headers["X-Request-ID"]]
        assert (caller, case_ref) == ("clinic-a", "ward-7/case:0042")
        assert n == {"/predict": 1, "/explain": 1, "/predict/batch": 5}.get(route, 3)
        assert stored_route.startswith(route.split("{")[0][:8])
    raw = (keyed.record_dir or Path()).joinpath("record.sqlite3").read_bytes()
    assert KEY.encode() not in raw  # the key's name is kept, never the key


@pytest.mark.parametrize(
    "value",
    ["", "x" * 129, "has space", "semi;colon", "ünï"],
    ids=["empty", "long", "space", "semicolon", "non-ascii"],
)
def test_a_bad_case_reference_is_refused_and_not_recorded(
    keyed: LiveServer, dataset: Dataset, value: str
) -> None:
    before = len(stored(RecordConfig(keyed.record_dir or Path())))
    answer = httpx.post(
        f"{keyed.url}/predict",
        json=case(dataset.X[0]),
        headers=[(b"X-API-Key", KEY.encode()), (b"X-Case-Reference", value.encode("utf-8"))],
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["detail"][0]["type"] == "invalid_case_reference"
    assert len(stored(RecordConfig(keyed.record_dir or Path()))) == before


def _load(
    server: LiveServer, rows: np.ndarray, answered: dict[str, int], stop: threading.Event
) -> None:
    rng = random.Random()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while not stop.is_set():
            n = rng.choice([1, 1, 3, 50])
            picked = rows[rng.sample(range(len(rows)), n)]
            request_id = f"crash-{rng.getrandbits(64):016x}"
            try:
                if n == 1 and rng.random() < 0.5:
                    answer = client.post(
                        "/predict", json=case(picked[0]), headers={"X-Request-ID": request_id}
                    )
                else:
                    answer = client.post(
                        "/predict/batch",
                        json={"instances": [case(r) for r in picked]},
                        headers={"X-Request-ID": request_id},
                    )
            except httpx.HTTPError:
                continue  # killed mid-request: no answer, so nothing is owed
            if answer.status_code == 200:
                answered[request_id] = n


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_nothing_answered_is_missing_after_a_sigkill_under_load(
    workers: int, dataset: Dataset, config: RecordConfig
) -> None:
    """SIGKILL the whole service (supervisor and workers) at a random moment while several
    clients send requests; every request answered 200 has all its rows in the record, and the
    record's chains are intact. Then the service starts again on the same record."""
    rng = random.Random(workers)
    total_answered = 0
    for _ in range(CRASH_ROUNDS):
        answered: dict[str, int] = {}
        stop = threading.Event()
        with start_server(service_env(config), workers=workers) as server:
            threads = [
                threading.Thread(target=_load, args=(server, dataset.X, answered, stop))
                for _ in range(LOAD_THREADS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.5, 2.0))
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            stop.set()
            for thread in threads:
                thread.join(10)
        snapshot = dict(answered)
        missing = missing_from(config, snapshot)
        assert not missing, f"answered but not (wholly) recorded: {missing[:5]}"
        with open_store(config) as store:
            assert verify(store) == []
        total_answered += len(snapshot)
    assert total_answered > CRASH_ROUNDS * 10  # the load really ran


def test_fails_closed_and_recovers_when_the_disk_is_full(
    dataset: Dataset, small_tmpfs: Path
) -> None:
    """The record on a real small tmpfs under a live service, filled: predictions are 503
    record_unavailable with Retry-After and readiness 503 says why; space freed: both recover
    without a restart."""
    env = {"RECORD_DIR": str(small_tmpfs / "record")}
    batch = {"instances": [case(r) for r in dataset.X[:1000]]}
    with start_server(env) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/predict/batch", json=batch).status_code == 200
        filler = fill(small_tmpfs)
        statuses = [client.post("/predict/batch", json=batch) for _ in range(4)]
        refused = statuses[-1]
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"][0]["type"] == "record_unavailable"
        assert refused.headers["Retry-After"].isdigit()
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "record" in ready.json()["message"]
        documented = documented_examples(client.get("/openapi.json").json())
        assert refused.json() == documented["predict_batch", "record_unavailable"]
        for path in V2_READY:
            v2_ready = client.get(path)
            assert v2_ready.status_code == 503, (path, v2_ready.text)
            assert v2_ready.json() == documented["server_ready", "record_unavailable"]
        filler.unlink()
        deadline = time.monotonic() + 15
        while (status := client.post("/predict", json=batch["instances"][0]).status_code) != 200:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert client.get("/health/ready").status_code == 200
        for path in V2_READY:
            assert client.get(path).json()["ready"] is True
    answered = 2 + sum(s.status_code == 200 for s in statuses)
    with open_store(RecordConfig(small_tmpfs / "record")) as store:
        assert verify(store) == []
        assert sum(1 for _ in store.links()) == answered


def documented_examples(spec: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The OpenAPI document's 503 examples by (operation id, example name)."""
    return {
        (operation["operationId"], name): example["value"]
        for item in spec["paths"].values()
        for operation in item.values()
        for media in operation["responses"].get("503", {}).get("content", {}).values()
        for name, example in media.get("examples", {}).items()
    }


def record_metrics(server: LiveServer) -> dict[str, float]:
    """The record's failures by reason ("failures:<reason>") and its availability gauge, as the
    service's Prometheus port exposes them."""
    text = httpx.get(server.metrics_url, timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "predictor_record_failures_total":
                values[f"failures:{sample.labels['reason']}"] = sample.value
            elif sample.name == "predictor_record_available":
                values["available"] = sample.value
    return values


class Predictions:
    """Sends /predict with its own request ids; keeps the ids (and rows) of those answered 200."""

    def __init__(self, client: httpx.Client, row: np.ndarray) -> None:
        self.client, self.body = client, case(row)
        self.answered: dict[str, int] = {}

    def send(self) -> httpx.Response:
        request_id = f"pg-stop-{len(self.answered)}-{time.monotonic_ns()}"
        answer = self.client.post("/predict", json=self.body, headers={"X-Request-ID": request_id})
        if answer.status_code == 200:
            self.answered[request_id] = 1
        return answer


def test_fails_closed_and_recovers_when_postgresql_stops(
    dataset: Dataset, stoppable_pg: PostgresServer
) -> None:
    """A live service on PostgreSQL whose server is stopped (pg_ctl stop -m fast): predictions
    are 503 record_unavailable with Retry-After, readiness 503 names the record, the failures
    are counted on the Prometheus port; the server started again, predictions resume without
    restarting the service, and every answered one is in the record."""
    config = RecordConfig(database_url=stoppable_pg.database("live_stopped"))
    with (
        start_server(service_env(config)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        predictions = Predictions(client, dataset.X[0])
        assert [predictions.send().status_code for _ in range(3)] == [200] * 3
        stoppable_pg.stop()
        try:
            refused = [predictions.send() for _ in range(3)]
            ready = client.get("/health/ready")
            metrics = record_metrics(server)
        finally:
            stoppable_pg.start()
        for answer in refused:
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"][0]["type"] == "record_unavailable"
            assert answer.headers["Retry-After"].isdigit()
        assert ready.status_code == 503
        assert "record" in ready.json()["message"]
        assert "unreachable" in ready.json()["message"]
        assert metrics["failures:unreachable"] == len(refused)
        assert metrics["available"] == 0
        deadline = time.monotonic() + 20
        while (status := predictions.send().status_code) != 200:
            assert status == 503, status
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get("/health/ready").status_code == 200
        assert record_metrics(server)["available"] == 1
        assert server.returncode is None  # the same service, never restarted
    assert missing_from(config, predictions.answered) == []
    with open_store(config) as store:
        assert verify(store) == []
        # stopped while idle, no commit was in doubt: no record of an answer not given
        assert sum(1 for _ in store.links()) == len(predictions.answered)


def _short_connections(
    server: LiveServer, rows: np.ndarray, answered: dict[str, int], stop: threading.Event
) -> None:
    """/predict/batch on a new connection each time, so that both workers accept some."""
    rng = random.Random()
    with httpx.Client(
        base_url=server.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        while not stop.is_set():
            n = rng.choice([1, 3, 20])
            request_id = f"two-{rng.getrandbits(64):016x}"
            picked = rows[rng.sample(range(len(rows)), n)]
            body = {"instances": [case(r) for r in picked]}
            answer = client.post("/predict/batch", json=body, headers={"X-Request-ID": request_id})
            assert answer.status_code == 200, answer.text
            answered[request_id] = n


def wait_for_workers(server: LiveServer, workers: int, timeout: float = 60.0) -> None:
    """Until every worker has started: /health answers once the first has, and on a loaded
    machine the second can take seconds more, all connections meanwhile going to the first."""
    deadline = time.monotonic() + timeout
    while server.stderr().count("Application startup complete") < workers:
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.1)


def test_two_workers_on_postgresql_keep_their_chains_verifiable(
    dataset: Dataset, pg_server: PostgresServer
) -> None:
    """Two workers sharing one PostgreSQL database under concurrent load: each writes a chain
    of its own, both verify, and every answer has its record (and only answers do)."""
    config = RecordConfig(database_url=pg_server.database("live_two_workers"))
    answered: dict[str, int] = {}
    stop = threading.Event()
    with start_server(service_env(config), workers=2) as server:
        wait_for_workers(server, 2)
        threads = [
            threading.Thread(target=_short_connections, args=(server, dataset.X, answered, stop))
            for _ in range(LOAD_THREADS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(15)
    assert len(answered) > 20  # the load really ran
    assert missing_from(config, answered) == []
    with open_store(config) as store:
        assert verify(store) == []
        writers = [writer for writer in store.writers() if writer.last_seq > 0]
        records = sum(1 for _ in store.links())
    assert len(writers) == 2
    assert records == len(answered)
