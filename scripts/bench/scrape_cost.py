"""What scraping the Prometheus port at 10 Hz costs /predict: wrk with and without a scraper.

    python -m scripts.bench.scrape_cost [--workers 1] [--rounds 3] [--duration 10] [--checkout DIR]
                                        [--accept prometheus|text]

Starts `python -m app` (from DIR if given: another checkout, to compare) and runs wrk on
/predict at 8 connections, in pairs of rounds without and with a thread scraping METRICS_PORT
every 0.1 s, the order reversed every other pair, so that drift in the machine's load falls on
both alike. The scraper asks as Prometheus does (`--accept prometheus`: OpenMetrics preferred,
gzip), or for the plain text format (`--accept text`).

Prints the median of each side, the median of the pairs' ratios (the goal: with >= 0.95x
without), and the CPU the exposition process took per second of scraping beside the CPU the
workers took: on a loaded machine the req/s ratio is mostly noise, while that share is what the
scrapes take from /predict where CPU is the limit (a pod's CPU limit, a saturated host).
"""

import argparse
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Final

import psutil

from app.server.exposition import PROCESS_NAME
from scripts.bench.common import REPO_ROOT, median
from scripts.bench.http_load import LUA_TEMPLATE, Server, bodies, run_wrk, running
from tests.live_server import LOOPBACK, PYTHON_M_APP, free_port, server_env

CONNECTIONS: Final = 8
SCRAPE_SECONDS: Final = 0.1  # 10 Hz
# What Prometheus 2.x and 3.x send by default (scrape_protocols), and plain text.
ACCEPT: Final = {
    "prometheus": {
        "Accept": "application/openmetrics-text;version=1.0.0,"
        "application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "Accept-Encoding": "gzip",
    },
    "text": {},
}


class Scraper:
    """GET the exposition every SCRAPE_SECONDS in a thread, until stopped; counts its scrapes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.stop = threading.Event()
        self.scrapes = 0
        self.failures = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                request = urllib.request.Request(self.url, headers=self.headers)
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1
            next_at += SCRAPE_SECONDS
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> "Scraper":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def worker_processes(server: Server) -> list[psutil.Process]:
    """The processes that answer /predict: the workers, or the server itself with one."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    spawned = [
        p
        for p in root.children()
        if "spawn_main" in " ".join(p.cmdline()) and p.name() != PROCESS_NAME
    ]
    return spawned or [root]


def exposition_process(server: Server) -> psutil.Process:
    assert server.process is not None
    for child in psutil.Process(server.process.pid).children():
        if child.name() == PROCESS_NAME:
            return child
    raise RuntimeError("no metrics-server process: is METRICS_PORT set?")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def measured(
    workers: list[psutil.Process],
    exposition: psutil.Process,
    url: str,
    lua: Path,
    duration: float,
) -> dict[str, Any]:
    """A wrk run, with the workers' CPU time per request it made (us) and the CPU seconds the
    workers and the exposition took during it."""
    before = cpu_seconds(workers), cpu_seconds([exposition])
    stats = run_wrk(url, lua, CONNECTIONS, duration)
    stats["worker_cpu_s"] = cpu_seconds(workers) - before[0]
    stats["exposition_cpu_s"] = cpu_seconds([exposition]) - before[1]
    stats["worker_cpu_us"] = stats["worker_cpu_s"] / max(1, stats["requests"]) * 1e6
    return stats


def scrape_cpu_ms(
    server: Server, metrics_url: str, headers: dict[str, str], scrapes: int = 200
) -> float:
    """CPU time (user + system) of the server and its children per scrape, while idle."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)

    def cpu() -> float:
        return cpu_seconds([root, *root.children(recursive=True)])

    before = cpu()
    for _ in range(scrapes):
        request = urllib.request.Request(metrics_url, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    return (cpu() - before) / scrapes * 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--checkout", type=Path, default=REPO_ROOT)
    parser.add_argument("--accept", choices=sorted(ACCEPT), default="prometheus")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    metrics_port = free_port()
    env = server_env(
        {
            "HOST": LOOPBACK,
            "PORT": "{port}",
            "WORKERS": str(args.workers),
            "METRICS_PORT": str(metrics_port),
            "LOG_LEVEL": "warning",
        }
    )
    server = Server("service", list(PYTHON_M_APP), env, cwd=args.checkout)
    metrics_url = f"http://{LOOPBACK}:{metrics_port}/metrics"
    results: dict[str, list[dict[str, Any]]] = {"without": [], "with 10 Hz scraper": []}
    scrapes = failures = 0
    with tempfile.TemporaryDirectory() as tmp, running(server, Path(tmp)):
        lua = Path(tmp) / "predict.lua"
        lua.write_text(LUA_TEMPLATE.format(body=bodies()["/predict"].decode()))
        url = f"{server.url}/predict"
        run_wrk(url, lua, CONNECTIONS, 2)  # warm up
        workers = worker_processes(server)
        exposition = exposition_process(server)
        headers = ACCEPT[args.accept]
        for pair in range(args.rounds):
            for scraping in (False, True) if pair % 2 == 0 else (True, False):
                if not scraping:
                    results["without"].append(
                        measured(workers, exposition, url, lua, args.duration)
                    )
                    continue
                with Scraper(metrics_url, headers) as scraper:
                    results["with 10 Hz scraper"].append(
                        measured(workers, exposition, url, lua, args.duration)
                    )
                scrapes += scraper.scrapes
                failures += scraper.failures
        cpu_ms = scrape_cpu_ms(server, metrics_url, headers)
    report(args, results, scrapes, failures, cpu_ms)
    return 0


def report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    scrapes: int,
    failures: int,
    cpu_ms: float,
) -> None:
    print(
        f"checkout {args.checkout}, WORKERS={args.workers}, /predict at {CONNECTIONS} connections,"
        f" scraper accepting {args.accept}"
    )
    print(f"{args.rounds} pairs of rounds of {args.duration:g} s; median of the rounds")
    print(f"{'':<20} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'worker CPU us/req':>18}  rounds")
    for name, runs in results.items():
        rps = [r["rps"] for r in runs]
        p50 = median([r["p50_us"] / 1000 for r in runs])
        p99 = median([r["p99_us"] / 1000 for r in runs])
        cpu = median([r["worker_cpu_us"] for r in runs])
        shown = ", ".join(f"{v:,.0f}" for v in rps)
        print(f"{name:<20} {median(rps):>8,.0f} {p50:>7.2f} {p99:>7.2f} {cpu:>18.1f}  {shown}")
    pairs = list(zip(results["without"], results["with 10 Hz scraper"], strict=True))
    ratios = [scraped["rps"] / plain["rps"] for plain, scraped in pairs]
    shown = ", ".join(f"{r:.3f}" for r in ratios)
    print(f"with / without: {median(ratios):.3f}x (pairs: {shown}); {scrapes} scrapes answered,")
    print(f"  {failures} failed")
    scraped = results["with 10 Hz scraper"]
    exposition = sum(r["exposition_cpu_s"] for r in scraped)
    share = exposition / sum(r["worker_cpu_s"] for r in scraped)
    print(
        f"exposition CPU while scraped: {exposition / (args.rounds * args.duration) * 1000:.1f} ms"
        f" a second, {share:.1%} of the workers' CPU in the same rounds"
    )
    print(f"CPU of the service's processes per scrape, idle: {cpu_ms:.2f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
