"""HTTP throughput and latency of the real service beside two baseline apps, driven by wrk.

    python -m scripts.bench.http_load [--duration S] [--rounds R] [--quick] [--model PATH]
                                      [--json PATH]

Starts, each on a free loopback port with uvicorn (httptools; the baselines on asyncio's loop,
as the service's one worker: see app/__main__.py):
  - the service, `python -m app` (1 worker, its default settings, logs to a file), its record
    of predictions on SQLite in a temporary folder;
  - the service again with WORKERS=2, and with RECORD=false (what the record costs, side by
    side: /predict at 8 connections and 10,000-row binary V2);
  - `fastapi constant`: FastAPI with the service's own body models, answering a constant
    (scripts/bench/baselines.py);
  - `starlette constant`: a bare Starlette endpoint answering a constant without reading the body.
Then runs wrk (2 threads, or 1 for one connection) with a Lua script that POSTs a JSON body, in
interleaved rounds (the order reverses every other round): /predict at 1, 8 and 64 connections
on the service and both baselines, /predict at 64 connections on the 2-worker service, and
/predict/batch with 1,000 instances at 8 connections on the service and the FastAPI baseline,
/explain (the /predict body) at 1 and 8 connections on the service, and the Open Inference
Protocol (V2) on the service: one row as a JSON tensor at 8 connections (beside /predict),
10,000 rows as JSON and as binary INT64 tensors at 8 connections, and 100,000-row binary
requests at 2 connections, whose peak resident memory is sampled while they run. Between wrk
runs, `Artifact.predict_proba` and `ServedModel.score` time the same 10,000 rows in this
process, for the HTTP layer's share of binary V2.
Prints, per scenario, the median over rounds of req/s and of wrk's p50 and p99 latency, the
total of non-2xx/3xx answers and socket errors, and the goals' ratios (median of per-round
ratios). Exit status 1 if any response was an error or a socket failed; the ratios are reported,
not asserted. Loopback only.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from app.__main__ import event_loop
from app.core.dataplane import ServedModel
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.data import load_dataset
from model.features import FEATURE_NAMES
from scripts.bench.common import REPO_ROOT, machine_info, median, print_machine, write_json
from scripts.bench.v2_bodies import V2Body, binary_body, json_body
from scripts.bench.v2_bodies import rows as v2_rows
from scripts.cli import OneLineParser, positive_float, positive_int
from tests.live_server import LOOPBACK, free_port, server_env

BATCH_ROWS: Final = 1000
V2_ROWS: Final = 10_000
V2_BIG_ROWS: Final = 100_000
V2_INFER: Final = "/v2/models/malignancy-predictor/infer"
NO_RECORD: Final = "service without record"
UVICORN: Final = (
    sys.executable,
    "-m",
    "uvicorn",
    "--factory",
    "--host",
    LOOPBACK,
    "--loop",
    event_loop(1),
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
)
# wrk calls done() once with the merged statistics; it prints them as one JSON line.
LUA_TEMPLATE: Final = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, ' ..
    '"mean_us": %.1f, "max_us": %.0f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""
# The V2 bodies: binary, so read from a file rather than written into the script.
LUA_FILE_TEMPLATE: Final = """\
wrk.method = "POST"
{headers}
local f = assert(io.open("{path}", "rb"))
wrk.body = f:read("*a")
f:close()
""" + LUA_TEMPLATE.split("\n", 3)[3]


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int = 0
    process: "subprocess.Popen[bytes] | None" = None
    log: Path | None = None
    cwd: Path = REPO_ROOT  # the checkout it runs from (scripts/bench/ab.py runs two)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class Scenario:
    server: str
    path: str
    connections: int
    lua: Path
    rows: int = 1  # rows per request, for rows/s
    label: str = ""  # what the key names instead of the path
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.server} {self.label or self.path} c{self.connections}"


@contextmanager
def running(server: Server, logdir: Path) -> Iterator[Server]:
    """Start the server on a free port, wait for GET /health, stop it (SIGTERM) on exit."""
    server.port = free_port()
    server.log = logdir / f"{server.name.replace(' ', '-')}.log"
    command = [a.replace("{port}", str(server.port)) for a in server.command]
    env = {
        k: v.replace("{port}", str(server.port)).replace("{logdir}", str(logdir))
        for k, v in server.env.items()
    }
    with server.log.open("wb") as log:
        server.process = subprocess.Popen(
            command,
            cwd=server.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_healthy(server)
        yield server
    finally:
        stop(server.process)


def wait_healthy(server: Server, timeout: float = 60.0) -> None:
    assert server.process is not None
    assert server.log is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited at startup:\n{server.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{server.name} not healthy after {timeout} s:\n{server.log.read_text()}")


def stop(process: "subprocess.Popen[bytes] | None") -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)


def check_alive(server: Server) -> None:
    """Stop with the server's log when it has exited (crashed, or killed from outside)."""
    assert server.process is not None
    assert server.log is not None
    if server.process.poll() is not None:
        tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(
            f"{server.name} exited with status {server.process.returncode}; its log ends:\n{tail}"
        )


def post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def check_answers(servers: dict[str, Server], bodies: dict[str, bytes]) -> None:
    """One request per scenario before timing: a misconfigured target would answer 4xx."""
    for server in servers.values():
        for path, body in bodies.items():
            if server.name == "starlette constant" and path != "/predict":
                continue
            if not server.name.startswith("service") and path == "/explain":
                continue
            status, answer = post(server.url + path, body)
            if status != 200:
                raise SystemExit(f"{server.name} {path} answered {status}: {answer}")
            if server.name.startswith("service"):
                predictions = answer.get("predictions", [answer])
                expected = BATCH_ROWS if path.endswith("batch") else 1
                ok = len(predictions) == expected and all(
                    0.0 <= p["probability"] <= 1.0 and p["class"] in ("benign", "malignant")
                    for p in predictions
                )
                if not ok:
                    raise SystemExit(f"{server.name} {path} gave an invalid answer: {answer}")


def check_v2_answers(server: Server, v2: dict[str, V2Body]) -> None:
    for label, body in v2.items():
        request = urllib.request.Request(
            server.url + V2_INFER, data=body.body, headers=body.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                header_length = response.headers.get("Inference-Header-Content-Length")
                content = response.read()
        except urllib.error.HTTPError as exc:
            message = f"{server.name} V2 {label} answered {exc.code}: {exc.read()!r}"
            raise SystemExit(message) from None
        header = json.loads(content[: int(header_length)] if header_length else content)
        shapes = [o["shape"] for o in header["outputs"]]
        if shapes != [[body.rows], [body.rows]]:
            raise SystemExit(f"{server.name} V2 {label} gave outputs of shapes {shapes}")


class PeakMemory:
    """Samples the resident memory of a server's serving processes every 20 ms in a thread."""

    def __init__(self, server: Server) -> None:
        import threading

        self.server = server
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        processes = serving_processes(self.server)  # found once: sampled every 20 ms
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, *rss_mb(self.server, processes))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def in_process_rows_per_second(model: ServedModel, X: Any) -> dict[str, float]:
    """Rows/s of the model alone on X: the fastest of 20 calls, so that a busy moment of this
    machine counts as little as it can."""
    calls: dict[str, Callable[[], object]] = {
        "Artifact.predict_proba": lambda: model.artifact.predict_proba(X),
        "ServedModel.score": lambda: model.score(X, None),
    }
    result = {}
    for name, call in calls.items():
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        result[name] = len(X) / best
    return result


def run_wrk(url: str, lua: Path, connections: int, duration: float) -> dict[str, Any]:
    threads = min(2, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            stats: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
            stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
            stats["socket_errors"] = sum(stats[k] for k in ("connect", "read", "write", "timeout"))
            return stats
    raise SystemExit(f"wrk printed no statistics:\n{done.stdout}\n{done.stderr}")


def bodies() -> dict[str, bytes]:
    data = load_dataset()
    rows = [[int(v) for v in row] for row in data.X]
    single = dict(zip(FEATURE_NAMES, rows[0], strict=True))
    batch = {
        "instances": [
            dict(zip(FEATURE_NAMES, rows[i % len(rows)], strict=True)) for i in range(BATCH_ROWS)
        ]
    }
    dump = {"separators": (",", ":")}
    return {
        "/predict": json.dumps(single, **dump).encode(),  # type: ignore[arg-type]
        "/predict/batch": json.dumps(batch, **dump).encode(),  # type: ignore[arg-type]
        "/explain": json.dumps(single, **dump).encode(),  # type: ignore[arg-type]
    }


def serving_processes(server: Server) -> list["psutil.Process"]:
    """The processes that serve requests: the uvicorn workers (spawned children) of a
    multi-worker server, else the server process itself; never the Prometheus exposition's
    process, a spawned child too, told apart by its listening on METRICS_PORT."""
    assert server.process is not None
    parent = psutil.Process(server.process.pid)
    port = int(server.env.get("METRICS_PORT") or 0)
    spawned = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
    workers = [
        c
        for c in spawned
        if not any(
            conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
            for conn in c.net_connections("tcp")
        )
    ]
    return workers or [parent]


def rss_mb(server: Server, processes: list["psutil.Process"] | None = None) -> list[float]:
    """Resident memory of the serving processes (`processes`, or found again), in MB."""
    found = serving_processes(server) if processes is None else processes
    return [round(p.memory_info().rss / 2**20, 1) for p in found]


def writer_rss_mb(server: Server) -> list[float]:
    """Resident memory of the server's record writer processes (one per worker; none with the
    record off), in MB: not serving processes, but the pod's memory all the same."""
    assert server.process is not None
    found = psutil.Process(server.process.pid).children(recursive=True)
    return [round(p.memory_info().rss / 2**20, 1) for p in found if p.name() == "record-writer"]


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.http_load", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=positive_float, default=10.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument("--quick", action="store_true", help="3 s runs, 1 round")
    p.add_argument("--model", type=Path, default=DEFAULT_ARTIFACT_PATH, help="artifact to serve")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rounds = 3.0, 1
    return args


def ratio(a: Scenario, b: Scenario, key: str = "rps") -> tuple[float, list[float]]:
    per_round = [x[key] / y[key] for x, y in zip(a.results, b.results, strict=True)]
    return median(per_round), per_round


def make_servers(model: Path) -> dict[str, Server]:
    """The service (1 and 2 workers, and 1 without the record) and the two constant baselines,
    by name. Each service keeps its record in the run's temporary folder, never the checkout's."""
    service_env = {"HOST": LOOPBACK, "PORT": "{port}", "MODEL_PATH": str(model.resolve())}
    servers = (
        # Each its own metrics port: the default 9464 may be taken (another checkout's server).
        Server(
            "service",
            [sys.executable, "-m", "app"],
            server_env(
                {**service_env, "METRICS_PORT": str(free_port()), "RECORD_DIR": "{logdir}/r1"}
            ),
        ),
        Server(
            "service 2 workers",
            [sys.executable, "-m", "app"],
            server_env(
                {
                    **service_env,
                    "WORKERS": "2",
                    "METRICS_PORT": str(free_port()),
                    "RECORD_DIR": "{logdir}/r2",
                }
            ),
        ),
        Server(
            NO_RECORD,
            [sys.executable, "-m", "app"],
            server_env({**service_env, "METRICS_PORT": str(free_port()), "RECORD": "false"}),
        ),
        Server(
            "fastapi constant",
            [*UVICORN, "--port", "{port}", "scripts.bench.baselines:fastapi_constant"],
            server_env({}),
        ),
        Server(
            "starlette constant",
            [*UVICORN, "--port", "{port}", "scripts.bench.baselines:starlette_constant"],
            server_env({}),
        ),
    )
    return {s.name: s for s in servers}


def v2_bodies() -> dict[str, V2Body]:
    return {
        "V2 JSON 1 row": json_body(v2_rows(1)),
        f"V2 JSON {V2_ROWS:,} rows": json_body(v2_rows(V2_ROWS)),
        f"V2 binary {V2_ROWS:,} rows": binary_body(v2_rows(V2_ROWS)),
        f"V2 binary {V2_BIG_ROWS:,} rows": binary_body(v2_rows(V2_BIG_ROWS)),
    }


def write_lua(tmpdir: Path, payloads: dict[str, bytes], v2: dict[str, V2Body]) -> dict[str, Path]:
    """wrk's script for each native path (its body inline) and each V2 body (read from a file,
    being binary), by path or label."""
    lua = {}
    for path, body in payloads.items():
        lua[path] = tmpdir / f"post{path.replace('/', '-')}.lua"
        lua[path].write_text(LUA_TEMPLATE.format(body=body.decode()), encoding="utf-8")
    for i, (label, v2_body) in enumerate(v2.items()):
        data = tmpdir / f"v2-{i}.body"
        data.write_bytes(v2_body.body)
        headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in v2_body.headers.items())
        lua[label] = tmpdir / f"v2-{i}.lua"
        lua[label].write_text(
            LUA_FILE_TEMPLATE.format(headers=headers, path=data), encoding="utf-8"
        )
    return lua


def make_scenarios(lua: dict[str, Path], v2: dict[str, V2Body]) -> list[Scenario]:
    """Every scenario in run order; the last is the 100,000-row V2 one whose memory is sampled."""
    scenarios: list[Scenario] = []
    for conns in (1, 8, 64):
        for name in ("service", "fastapi constant", "starlette constant"):
            scenarios.append(Scenario(name, "/predict", conns, lua["/predict"]))
    scenarios.append(Scenario(NO_RECORD, "/predict", 8, lua["/predict"]))
    scenarios.append(Scenario("service 2 workers", "/predict", 64, lua["/predict"]))
    for name in ("service", "fastapi constant"):
        scenarios.append(
            Scenario(name, "/predict/batch", 8, lua["/predict/batch"], rows=BATCH_ROWS)
        )
    for conns in (1, 8):
        scenarios.append(Scenario("service", "/explain", conns, lua["/explain"]))
    for label, v2_body in v2.items():
        conns = 2 if v2_body.rows == V2_BIG_ROWS else 8
        scenarios.append(
            Scenario("service", V2_INFER, conns, lua[label], rows=v2_body.rows, label=label)
        )
    label = f"V2 binary {V2_ROWS:,} rows"  # the record's cost on V2 (the big one stays last)
    scenarios.insert(-1, Scenario(NO_RECORD, V2_INFER, 8, lua[label], rows=V2_ROWS, label=label))
    return scenarios


@dataclass
class Measured:
    """What the rounds measured besides wrk's figures (which go into each scenario's results)."""

    in_process: list[dict[str, float]] = field(default_factory=list)
    peak_memory: float = 0.0
    memory_before: dict[str, list[float]] = field(default_factory=dict)
    memory_after: dict[str, list[float]] = field(default_factory=dict)
    writer_memory: dict[str, list[float]] = field(default_factory=dict)


def run_scenario(server: Server, s: Scenario, duration: float) -> tuple[dict[str, Any], float]:
    """One wrk run of a scenario: its statistics and the server's peak RSS meanwhile."""
    check_alive(server)
    try:
        with PeakMemory(server) as sampled:
            stats = run_wrk(server.url + s.path, s.lua, s.connections, duration)
    except SystemExit as exc:
        check_alive(server)
        raise SystemExit(f"{s.key}: {exc}") from None
    return stats, sampled.peak


def measure(
    servers: dict[str, Server], scenarios: list[Scenario], args: argparse.Namespace, model: Path
) -> Measured:
    """Warm every scenario up, then the interleaved rounds (the order reverses every other
    round), each followed by the in-process timing of the same V2 rows."""
    served, X_v2 = ServedModel.load(model), v2_rows(V2_ROWS)
    big, measured = scenarios[-1], Measured()
    print(
        f"{len(scenarios)} scenarios x {args.rounds} rounds x {args.duration:g} s "
        f"(about {len(scenarios) * args.rounds * (args.duration + 0.5) / 60:.1f} min)"
    )
    for s in scenarios:  # warm-up: imports, caches, first connections
        run_wrk(servers[s.server].url + s.path, s.lua, min(s.connections, 8), 1)
    measured.memory_before = {name: rss_mb(server) for name, server in servers.items()}
    for r in range(args.rounds):
        for s in scenarios if r % 2 == 0 else scenarios[::-1]:
            stats, peak = run_scenario(servers[s.server], s, args.duration)
            if s is big:
                measured.peak_memory = max(measured.peak_memory, peak)
            s.results.append(stats)
        measured.in_process.append(in_process_rows_per_second(served, X_v2))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    measured.memory_after = {name: rss_mb(server) for name, server in servers.items()}
    measured.writer_memory = {name: writer_rss_mb(server) for name, server in servers.items()}
    return measured


def run_benchmark(
    args: argparse.Namespace, servers: dict[str, Server]
) -> tuple[list[Scenario], Measured]:
    """Start every server, check each answers correctly, then measure every scenario."""
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        payloads, v2 = bodies(), v2_bodies()
        lua = write_lua(tmpdir, payloads, v2)
        for server in servers.values():
            stack.enter_context(running(server, tmpdir))
        check_answers(servers, payloads)
        check_v2_answers(servers["service"], v2)
        scenarios = make_scenarios(lua, v2)
        return scenarios, measure(servers, scenarios, args, args.model)


def summarize(scenarios: list[Scenario]) -> dict[str, dict[str, Any]]:
    """Each scenario's medians over rounds and its error totals, printed as a table."""
    print(
        f"\n{'scenario':40}{'req/s':>9}{'rows/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-2xx':>9}{'sock err':>9}"
    )
    table = {}
    for s in scenarios:
        row = {
            "rps": median([x["rps"] for x in s.results]),
            "rows_per_s": median([x["rps"] * s.rows for x in s.results]),
            "p50_ms": median([x["p50_us"] / 1000 for x in s.results]),
            "p99_ms": median([x["p99_us"] / 1000 for x in s.results]),
            "non_2xx": sum(x["status"] for x in s.results),
            "socket_errors": sum(x["socket_errors"] for x in s.results),
            "rounds": s.results,
        }
        table[s.key] = row
        print(
            f"{s.key:40}{row['rps']:>9,.0f}{row['rows_per_s']:>11,.0f}{row['p50_ms']:>8.2f}"
            f"{row['p99_ms']:>8.2f}{row['non_2xx']:>9}{row['socket_errors']:>9}"
        )
    return table


Goals = dict[str, dict[str, Any]]


def goal(value: float, target: str, met: bool, detail: str = "") -> dict[str, Any]:
    return {"value": value, "target": target, "met": met, "detail": detail}


def native_goals(by_key: dict[str, Scenario], table: dict[str, dict[str, Any]]) -> Goals:
    """/predict against the baselines, its latency and scaling, /predict/batch and /explain."""
    svc8, fa8, st8 = (
        by_key[f"{n} /predict c8"] for n in ("service", "fastapi constant", "starlette constant")
    )
    bare8 = by_key[f"{NO_RECORD} /predict c8"]
    goals: Goals = {}
    # The request path itself, without the record's fsync: issue 21's goals.
    q, rounds = ratio(bare8, fa8)
    goals["/predict without the record vs FastAPI constant, 8 conns"] = goal(
        q, ">= 0.95", q >= 0.95, _fmt(rounds)
    )
    p99 = table[bare8.key]["p99_ms"]
    goals["/predict p99 at 8 conns without the record (ms)"] = goal(p99, "< 10", p99 < 10)
    # What the durable record costs, side by side: issue 23's goals.
    q, rounds = ratio(svc8, bare8)
    goals["/predict with the record vs without, 8 conns"] = goal(
        q, ">= 0.7", q >= 0.7, _fmt(rounds)
    )
    p99 = table[svc8.key]["p99_ms"]
    goals["/predict p99 at 8 conns with the record (ms)"] = goal(p99, "< 15", p99 < 15)
    q, rounds = ratio(svc8, fa8)
    goals["/predict vs FastAPI constant, 8 conns"] = goal(q, "(reference)", True, _fmt(rounds))
    q, rounds = ratio(svc8, st8)
    goals["/predict vs Starlette constant, 8 conns"] = goal(
        q, ">= 0.6 (stretch)", q >= 0.6, _fmt(rounds)
    )
    q, rounds = ratio(fa8, st8)
    goals["FastAPI constant vs Starlette constant, 8 conns"] = goal(
        q, "(reference)", True, _fmt(rounds)
    )
    s64 = table["service /predict c64"]
    spread = s64["p99_ms"] / s64["p50_ms"]
    goals["/predict p99 / p50 at 64 conns"] = goal(spread, "<= 3", spread <= 3)
    q, rounds = ratio(by_key["service 2 workers /predict c64"], by_key["service /predict c64"])
    goals["2 workers vs 1 worker, /predict 64 conns"] = goal(q, ">= 1.5", q >= 1.5, _fmt(rounds))
    rows = table["service /predict/batch c8"]["rows_per_s"]
    goals["/predict/batch 1,000 rows, rows/s"] = goal(rows, ">= 200,000", rows >= 200_000)
    q, rounds = ratio(
        by_key["service /predict/batch c8"], by_key["fastapi constant /predict/batch c8"]
    )
    goals["/predict/batch vs FastAPI constant batch"] = goal(q, "(reference)", True, _fmt(rounds))
    q, rounds = ratio(by_key["service /explain c1"], by_key["service /predict c1"])
    goals["/explain vs /predict req/s, 1 conn"] = goal(q, "(reference)", True, _fmt(rounds))
    return goals


def v2_goals(
    by_key: dict[str, Scenario], table: dict[str, dict[str, Any]], measured: Measured
) -> Goals:
    """V2's rows/s as JSON and binary, binary against the model in process, one row against
    /predict, and the memory of 100,000-row requests."""
    v2_json = by_key[f"service V2 JSON {V2_ROWS:,} rows c8"]
    v2_binary = by_key[f"service V2 binary {V2_ROWS:,} rows c8"]
    goals: Goals = {}
    rows = table[v2_json.key]["rows_per_s"]
    goals[f"V2 JSON {V2_ROWS:,} rows, rows/s"] = goal(rows, ">= 1,000,000", rows >= 1_000_000)
    rows = table[v2_binary.key]["rows_per_s"]
    goals[f"V2 binary {V2_ROWS:,} rows, rows/s"] = goal(rows, ">= 4,000,000", rows >= 4_000_000)
    for name in ("Artifact.predict_proba", "ServedModel.score"):
        per_round = [
            x["rps"] * V2_ROWS / p[name]
            for x, p in zip(v2_binary.results, measured.in_process, strict=True)
        ]
        q = median(per_round)
        target = ">= 0.5" if name == "Artifact.predict_proba" else "(reference)"
        label = f"V2 binary over HTTP vs in-process {name}, {V2_ROWS:,} rows"
        goals[label] = goal(q, target, q >= 0.5, _fmt(per_round))
    q, rounds = ratio(v2_binary, by_key[f"{NO_RECORD} V2 binary {V2_ROWS:,} rows c8"])
    label = f"V2 binary {V2_ROWS:,} rows with the record vs without"
    goals[label] = goal(q, ">= 0.5", q >= 0.5, _fmt(rounds))
    q, rounds = ratio(by_key["service V2 JSON 1 row c8"], by_key["service /predict c8"])
    goals["V2 one row vs /predict, 8 conns"] = goal(q, ">= 0.8", q >= 0.8, _fmt(rounds))
    peak = measured.peak_memory
    label = f"service peak RSS serving {V2_BIG_ROWS:,}-row V2 requests, MB"
    goals[label] = goal(peak, "< 100", 0 < peak < 100)
    return goals


def memory_goals(scenarios: list[Scenario], measured: Measured) -> Goals:
    """The service's RSS growth over every request it served, and each worker's RSS."""
    served = sum(sum(x["requests"] for x in s.results) for s in scenarios if s.server == "service")
    before, after = measured.memory_before["service"][0], measured.memory_after["service"][0]
    growth = after / before - 1
    largest = max(after, *measured.memory_after["service 2 workers"])
    return {
        f"service RSS growth over {served:,} requests, %": goal(
            100 * growth, "< 5", growth < 0.05, f"{before:.1f} -> {after:.1f} MB"
        ),
        "service RSS per worker, MB": goal(largest, "< 100", largest < 100),
    }


def print_goals(goals: Goals, measured: Measured) -> None:
    print(f"\n{'goal':50}{'value':>12}  {'target':18}")
    for name, g in goals.items():
        value = f"{g['value']:,.0f}" if g["value"] >= 1000 else f"{g['value']:.2f}"
        mark = "" if g["target"].startswith("(") else ("  ok" if g["met"] else "  MISSED")
        print(f"{name:50}{value:>12}  {g['target']:18}{mark}  {g['detail']}")
    print(
        f"\nresident memory (MB) before / after the measured rounds: {measured.memory_before} / "
        f"{measured.memory_after}"
    )


def results_json(
    args: argparse.Namespace,
    info: dict[str, Any],
    table: dict[str, dict[str, Any]],
    goals: Goals,
    measured: Measured,
) -> dict[str, Any]:
    return {
        "benchmark": "http",
        "machine": info,
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "wrk_threads": "2 (1 for 1 connection)",
        },
        "scenarios": table,
        "goals": goals,
        "rss_mb": measured.memory_after,
        "in_process_rows_per_s": measured.in_process,
        "v2_peak_rss_mb": measured.peak_memory,
        "rss_mb_before": measured.memory_before,
        "writer_rss_mb": measured.writer_memory,
        "errors": sum(row["non_2xx"] + row["socket_errors"] for row in table.values()),
    }


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print(
            "scripts.bench.http_load: wrk is not installed (Debian: apt-get install wrk)",
            file=sys.stderr,
        )
        return 2
    servers = make_servers(args.model)
    info = machine_info()
    print_machine(info)
    scenarios, measured = run_benchmark(args, servers)
    table = summarize(scenarios)
    by_key = {s.key: s for s in scenarios}
    goals = native_goals(by_key, table) | v2_goals(by_key, table, measured)
    goals |= memory_goals(scenarios, measured)
    print_goals(goals, measured)
    results = results_json(args, info, table, goals, measured)
    write_json(args.json, results)
    if results["errors"]:
        print(
            f"scripts.bench.http_load: {results['errors']} error responses or socket errors",
            file=sys.stderr,
        )
    return 1 if results["errors"] else 0


def _fmt(values: list[float]) -> str:
    return "rounds " + " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
