"""This checkout's `python -m app` against another checkout's, side by side, driven by wrk.

    python -m scripts.bench.ab --against DIR [--duration S] [--rounds R] [--json PATH]
                               [--this-env NAME=VALUE ...] [--against-env NAME=VALUE ...]
                               [--scenarios 1x1,1x8,1x64,2x64] [--request predict|v2-binary]

DIR is another checkout of the service (say the main branch's worktree) with its own `.venv`.
Both serve the same artifact (this checkout's model/weights.json) on loopback, each with 1 worker
and with 2; wrk (scripts/bench/http_load.py's Lua script) POSTs /predict at 1, 8 and 64
connections to the 1-worker servers and at 64 to the 2-worker ones (`--scenarios` picks some
of these, WORKERSxCONNECTIONS), in interleaved rounds whose
order reverses every other round. Prints the median req/s and p99 of each, and this checkout's
req/s over DIR's (median of per-round ratios): a change on the request path is judged by these
ratios, never by absolute figures from different runs. Exit status 1 on any error answer. The
CPU per request is the user and system time of the server's processes (workers included)
during a run over its answers: on a shared machine it holds steadier than req/s; in brackets,
the share of it spent by the record's writer processes.

`--this-env` and `--against-env` add settings to one side: `--against . --against-env
RECORD=false` measures the record's cost on this checkout. Each side keeps its record in a
temporary folder of its own. `--request v2-binary` POSTs a V2 infer of `--rows` (10,000) rows as
a binary INT64 tensor instead, and reports rows/s too. After the rounds, each side's record
figures are read from its Prometheus exposition: commits, mean group size, commit and wait
quantiles (bucket bounds).
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from app.record.recorder import WRITER_MODULE
from model.artifact import DEFAULT_ARTIFACT_PATH
from scripts.bench.common import REPO_ROOT, machine_info, median, print_machine, write_json
from scripts.bench.http_load import (
    LUA_FILE_TEMPLATE,
    LUA_TEMPLATE,
    V2_INFER,
    Server,
    bodies,
    check_alive,
    run_wrk,
    running,
)
from scripts.bench.v2_bodies import binary_body
from scripts.bench.v2_bodies import rows as v2_rows
from scripts.cli import OneLineParser, positive_float, positive_int
from tests.live_server import LOOPBACK, free_port, server_env

SCENARIOS: Final = ((1, 1), (1, 8), (1, 64), (2, 64))  # (workers, connections)


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("--against", type=Path, required=True, help="the other checkout")
    p.add_argument("--duration", type=positive_float, default=5.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument(
        "--against-model",
        type=Path,
        help="the artifact the other checkout serves (default: this checkout's), for a checkout "
        "whose code reads another artifact format",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--request", choices=("predict", "v2-binary"), default="predict")
    p.add_argument("--rows", type=positive_int, default=10_000, help="rows of a v2-binary infer")
    p.add_argument(
        "--scenarios",
        type=scenarios,
        default=SCENARIOS,
        help="WORKERSxCONNECTIONS,... (default: 1x1,1x8,1x64,2x64)",
    )
    p.add_argument("--this-env", action="append", default=[], type=setting, help="NAME=VALUE")
    p.add_argument("--against-env", action="append", default=[], type=setting, help="NAME=VALUE")
    args = p.parse_args()
    python = args.against / ".venv" / "bin" / "python"
    if not (args.against / "app" / "__main__.py").is_file() or not python.is_file():
        p.error("--against must be a checkout of the service with its .venv")
    return args


def scenarios(text: str) -> tuple[tuple[int, int], ...]:
    try:
        found = tuple(
            (int(w), int(c)) for w, _, c in (part.partition("x") for part in text.split(","))
        )
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WORKERSxCONNECTIONS,...") from None
    if not found or any(w not in (1, 2) or c < 1 for w, c in found):
        raise argparse.ArgumentTypeError("workers must be 1 or 2, connections at least 1")
    return found


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def servers(
    against: Path,
    against_model: Path | None,
    extra: dict[str, dict[str, str]],
    tmp: Path,
    worker_counts: set[int],
) -> dict[str, Server]:
    models = {"this": DEFAULT_ARTIFACT_PATH, "against": against_model or DEFAULT_ARTIFACT_PATH}
    python = {"this": (sys.executable, REPO_ROOT), "against": (".venv/bin/python", against)}
    found = {}
    for side, (interpreter, where) in python.items():
        for workers in sorted(worker_counts):
            command = [str(where.resolve() / interpreter), "-m", "app"]  # the venv, unresolved
            env = {"HOST": LOOPBACK, "PORT": "{port}", "MODEL_PATH": str(models[side].resolve())}
            # Each its own Prometheus port (a checkout without one ignores the variable).
            env["METRICS_PORT"] = str(free_port())
            env["RECORD_DIR"] = str(tmp / f"record-{side}-{workers}")
            env.update(extra[side])
            run_env = server_env({**env, "WORKERS": str(workers)})
            name = f"{side} {workers}w"
            found[name] = Server(name, command, run_env, cwd=where.resolve())
    return found


def request_script(request: str, rows: int, tmp: Path) -> tuple[str, Path]:
    """The path to POST and wrk's script for it."""
    lua = tmp / f"{request}.lua"
    if request == "predict":
        lua.write_text(LUA_TEMPLATE.format(body=bodies()["/predict"].decode()))
        return "/predict", lua
    body = binary_body(v2_rows(rows))
    data = tmp / f"{request}.body"
    data.write_bytes(body.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in body.headers.items())
    lua.write_text(LUA_FILE_TEMPLATE.format(headers=headers, path=data), encoding="utf-8")
    return V2_INFER, lua


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU so far of process `pid` and its descendants (a server's workers and
    their record writers), and of the record writers among them."""
    root = psutil.Process(pid)
    total = writers = 0.0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            used = times.user + times.system
            total += used
            if WRITER_MODULE in process.cmdline():
                writers += used
    return total, writers


def record_figures(server: Server) -> str:
    """The record's figures since the server started, from its metrics (empty when off)."""
    url = f"http://{LOOPBACK}:{server.env['METRICS_PORT']}/metrics"
    try:
        text = httpx.get(url, timeout=10).text
    except httpx.HTTPError:
        return ""
    samples = {
        (s.name, s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("predictor_record_")
    }
    commits = samples.get(("predictor_record_commit_seconds_count", ""), 0.0)
    if not commits:
        return ""
    records = samples.get(("predictor_record_records_written_total", ""), 0.0)
    commit_q = [bucket_quantile(samples, "predictor_record_commit_seconds", q) for q in (0.5, 0.99)]
    wait_q = [bucket_quantile(samples, "predictor_record_wait_seconds", q) for q in (0.5, 0.99)]
    return (
        f"{commits:,.0f} commits, {records:,.0f} records, mean group {records / commits:.2f}; "
        f"commit p50 <= {commit_q[0] * 1e3:g} ms, p99 <= {commit_q[1] * 1e3:g} ms; "
        f"wait p50 <= {wait_q[0] * 1e3:g} ms, p99 <= {wait_q[1] * 1e3:g} ms"
    )


def bucket_quantile(samples: dict[tuple[str, str], float], name: str, q: float) -> float:
    """The upper bound of the histogram bucket holding the q-quantile (inf past the last)."""
    buckets = sorted(
        (float(le), count) for (sample, le), count in samples.items() if sample == f"{name}_bucket"
    )
    total = buckets[-1][1] if buckets else 0.0
    return next((le for le, count in buckets if count >= q * total), float("inf"))


Results = dict[str, list[dict[str, float]]]


def measure(args: argparse.Namespace, tmp: Path) -> tuple[Results, dict[str, str], int]:
    """Start both sides, run the interleaved rounds; their wrk figures, record figures and
    error count."""
    results: Results = {}
    errors = 0
    with ExitStack() as stack:
        path, lua = request_script(args.request, args.rows, tmp)
        # Each side runs from its own directory, so each serves its own code.
        extra = {"this": dict(args.this_env), "against": dict(args.against_env)}
        worker_counts = {w for w, _ in args.scenarios}
        found = servers(args.against, args.against_model, extra, tmp, worker_counts)
        started = {name: stack.enter_context(running(s, tmp)) for name, s in found.items()}
        for server in started.values():
            run_wrk(server.url + path, lua, 8, 1)  # warm-up
        for round_ in range(args.rounds):
            sides = ("this", "against") if round_ % 2 == 0 else ("against", "this")
            for workers, connections in args.scenarios:
                for side in sides:
                    stats = run_one(started[f"{side} {workers}w"], path, lua, connections, args)
                    errors += int(stats["status"] + stats["socket_errors"])
                    results.setdefault(f"{side} {workers}w c{connections}", []).append(stats)
        figures = {name: record_figures(server) for name, server in started.items()}
    return results, figures, errors


def run_one(
    server: Server, path: str, lua: Path, connections: int, args: argparse.Namespace
) -> dict[str, float]:
    """One wrk run, with the server's CPU per answer."""
    check_alive(server)
    assert server.process is not None
    cpu, writers = cpu_seconds(server.process.pid)
    stats = run_wrk(server.url + path, lua, connections, args.duration)
    cpu_after, writers_after = cpu_seconds(server.process.pid)
    stats["cpu_ms"] = (cpu_after - cpu) * 1e3 / stats["requests"]
    stats["writer_cpu_ms"] = (writers_after - writers) * 1e3 / stats["requests"]
    return stats


def summarise(this: list[dict[str, float]], other: list[dict[str, float]]) -> dict[str, Any]:
    ratios = [a["rps"] / b["rps"] for a, b in zip(this, other, strict=True)]
    return {
        "this_rps": median([r["rps"] for r in this]),
        "against_rps": median([r["rps"] for r in other]),
        "ratio": median(ratios),
        "ratios": ratios,
        "this_p99_ms": median([r["p99_us"] for r in this]) / 1000,
        "against_p99_ms": median([r["p99_us"] for r in other]) / 1000,
        "this_cpu_ms": median([r["cpu_ms"] for r in this]),
        "against_cpu_ms": median([r["cpu_ms"] for r in other]),
        "this_writer_cpu_ms": median([r["writer_cpu_ms"] for r in this]),
        "against_writer_cpu_ms": median([r["writer_cpu_ms"] for r in other]),
    }


def print_table(args: argparse.Namespace, results: Results) -> dict[str, dict[str, Any]]:
    rows = args.rows if args.request == "v2-binary" else 1
    what = f"V2 binary infer of {rows:,} rows" if rows > 1 else "/predict"
    print(f"\n{what}, {args.rounds} round(s) of {args.duration:g} s; against: {args.against}")
    print(
        "| scenario | this req/s | against req/s | this / against | this p99 ms | against p99 ms "
        "| this CPU ms/req (writer) | against CPU ms/req (writer) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for workers, connections in args.scenarios:
        row = summarise(
            results[f"this {workers}w c{connections}"],
            results[f"against {workers}w c{connections}"],
        )
        summary[f"{workers} worker(s) c{connections}"] = row
        print(
            f"| {workers} worker(s), {connections} conn | {row['this_rps']:,.0f} | "
            f"{row['against_rps']:,.0f} | {row['ratio']:.3f} "
            f"({', '.join(f'{r:.2f}' for r in row['ratios'])}) | {row['this_p99_ms']:.2f} | "
            f"{row['against_p99_ms']:.2f} | {row['this_cpu_ms']:.3f} "
            f"({row['this_writer_cpu_ms']:.3f}) | {row['against_cpu_ms']:.3f} "
            f"({row['against_writer_cpu_ms']:.3f}) |"
        )
        if rows > 1:
            this_rows, other_rows = row["this_rps"] * rows, row["against_rps"] * rows
            print(f"|   rows/s | {this_rows:,.0f} | {other_rows:,.0f} | | | | | |")
    return summary


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print(
            "scripts.bench.ab: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr
        )
        return 2
    info = machine_info()
    print_machine(info)
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        results, figures, errors = measure(args, Path(tmp))
    summary = print_table(args, results)
    print(f"non-2xx answers and socket errors: {errors}")
    for name, figure in figures.items():
        if figure:
            print(f"record of {name}: {figure}")
    if args.json is not None:
        payload = {"machine": info, "against": str(args.against), "results": summary}
        write_json(args.json, {**payload, "record": figures})
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
