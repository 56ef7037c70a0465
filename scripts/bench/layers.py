"""What each layer of /predict costs, in instructions and L2 cache misses counted by valgrind:
figures a shared, noisy machine cannot move.

    python -m scripts.bench.layers [--requests N] [--jobs J]

Each variant runs in a child process under `valgrind --tool=cachegrind --cache-sim=no` twice,
answering WARM requests and then WARM + N, and the difference over N is what one request costs
(imports, startup and the model's loading cancel out). The variants:
  - the service's app as `create_app` builds it (the access log on), called in process with the
    docs page's benign /predict, as scripts/bench/asgi.py calls it;
  - the same without one of its middlewares (Observed, which writes the access log and records
    the request metrics, also without the prediction counter its route adds), which says what
    that layer costs; and with Observed doing only one of its two jobs, `access_log=False` (the
    metrics alone) or `metrics=False` (the access log alone, and no prediction counter);
  - the same with FastAPI's native OpenTelemetry hooks on (FastAPI's default; app/main.py turns
    them off);
  - uvicorn's HttpToolsProtocol and app/server/edge.py's GuardedHttpToolsProtocol parsing the
    same request on one keep-alive connection to an app answering at once
    (scripts/bench/protocol.py's harness): the server's share, and what the edge limits add.
Instructions are not time: a system call counts only its user-space side, and a request whose
code and data do not stay in the CPU's caches between requests pays for each line it fetches
again. So cachegrind also simulates the caches, with this machine's per-core L2 (512 KiB, 8-way,
64-byte lines) as the last level, and counts the L2 misses a request makes: on the AMD EPYC here
one costs about 20 ns, the time of some 60 instructions. The two rank and size a layer's cost
without noise; scripts/bench/ab.py measures the whole.
Under valgrind a program runs about 50 times slower, so the metrics tally's 10 ms flush interval
is stretched to 0.5 s, as many requests per flush as at full speed. Needs Debian's valgrind.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from scripts.cli import OneLineParser, positive_int

WARM: Final = 20
VALGRIND_SLOWDOWN: Final = 50
SERVICE: Final = "service /predict"
MIDDLEWARES: Final = (
    "RequestId",
    "Observed",
    "BodySizeLimit",
    "IdentityContentEncoding",
    "StrictQuery",
)
# Observed's two jobs, each left out in turn: the variant's name, and Observed's arguments then.
OBSERVED_PARTS: Final = {
    "the access log": {"access_log": False},
    "the request metrics": {"metrics": False},
}
TELEMETRY_ON: Final = "service /predict, FastAPI's telemetry on"
PLAIN_PROTOCOL: Final = "uvicorn HttpToolsProtocol"
EDGE_PROTOCOL: Final = "GuardedHttpToolsProtocol"
VARIANTS: Final = (
    SERVICE,
    *(f"service /predict without {name}" for name in (*MIDDLEWARES, *OBSERVED_PARTS)),
    TELEMETRY_ON,
    PLAIN_PROTOCOL,
    EDGE_PROTOCOL,
)
if TYPE_CHECKING:
    from fastapi import FastAPI

L1: Final = "32768,8,64"  # size, ways, line bytes: the first-level caches of this machine
L2: Final = "524288,8,64"
_COUNTS: Final = {
    "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
    "l2_misses": re.compile(r"LL misses:\s+([\d,]+)"),
}


class Counts(NamedTuple):
    instructions: float
    l2_misses: float


def service_app(without: str | None = None, telemetry_on: bool = False) -> "FastAPI":
    """The service's app, optionally without one middleware class or one of Observed's jobs
    (`without`: a name of MIDDLEWARES or OBSERVED_PARTS), or with FastAPI's telemetry."""
    from fastapi import FastAPI

    import app.main
    from app.middleware.observed import Observed
    from app.observability import prometheus as telemetry
    from scripts.bench import asgi

    telemetry.TALLY.flush_seconds *= VALGRIND_SLOWDOWN
    if telemetry_on:
        app.main.FASTAPI_TELEMETRY_OFF = {}  # type: ignore[misc]
    built = asgi.service("info")
    assert isinstance(built, FastAPI)
    if without in OBSERVED_PARTS:
        asgi.reconfigure(built, Observed, **OBSERVED_PARTS[without])
    elif without is not None:
        built.user_middleware = [
            m for m in built.user_middleware if getattr(m.cls, "__name__", "") != without
        ]
    if without in ("Observed", "the request metrics"):
        telemetry.record_prediction = lambda route, class_name: None
    return built


async def run_app(built: Any, count: int) -> None:
    from scripts.bench import asgi

    lifespan = await asgi.start(built)
    template = asgi.scope(False)
    for _ in range(count):
        if await asgi.request(built, template) != 200:
            raise SystemExit("scripts.bench.layers: /predict did not answer 200")
    lifespan.cancel()


async def run_protocol(edge: bool, count: int) -> None:
    from uvicorn import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from app.server.edge import EdgeConfig, EdgeLimits, GuardedHttpToolsProtocol
    from scripts.bench.protocol import answer, per_request_us

    protocol: type[HttpToolsProtocol] = GuardedHttpToolsProtocol if edge else HttpToolsProtocol
    config = (
        EdgeConfig(answer, limits=EdgeLimits(), log_config=None)
        if edge
        else Config(answer, log_config=None)
    )
    config.load()
    await per_request_us(protocol, config, count)


def child(variant: str, count: int) -> None:
    """Answer `count` requests of `variant` (run under valgrind by the parent)."""
    with tempfile.TemporaryFile("w", buffering=1) as log:
        sys.stderr = log  # the access log, as a server's would go to its log
        if variant in (PLAIN_PROTOCOL, EDGE_PROTOCOL):
            asyncio.run(run_protocol(variant == EDGE_PROTOCOL, count))
            return
        without = variant.removeprefix("service /predict without ")
        built = service_app(
            without=None if without == variant else without,
            telemetry_on=variant == TELEMETRY_ON,
        )
        asyncio.run(run_app(built, count))


def counts(variant: str, count: int) -> Counts:
    """The instructions and L2 misses of a child answering `count` requests of `variant`."""
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "valgrind.log"
        env = {**os.environ, "PYTHONHASHSEED": "0", "PROMETHEUS_MULTIPROC_DIR": scratch}
        command = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=yes",
            f"--I1={L1}",
            f"--D1={L1}",
            f"--LL={L2}",
            "--cachegrind-out-file=/dev/null",
            f"--log-file={log}",
            sys.executable,
            "-m",
            "scripts.bench.layers",
            "--child",
            variant,
            "--count",
            str(count),
        ]
        subprocess.run(command, env=env, check=True, timeout=3600, stdout=subprocess.DEVNULL)
        text = log.read_text()
    found = {name: pattern.search(text) for name, pattern in _COUNTS.items()}
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise SystemExit(f"scripts.bench.layers: valgrind gave no {missing} for {variant}")
    return Counts(*(float(m.group(1).replace(",", "")) for m in found.values() if m))


def per_request(variant: str, n: int) -> Counts:
    many, few = counts(variant, WARM + n), counts(variant, WARM)
    return Counts(*((a - b) / n for a, b in zip(many, few, strict=True)))


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.layers", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=positive_int, default=1000, help="requests counted")
    p.add_argument("--jobs", type=positive_int, default=2, help="variants measured at once")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--count", type=positive_int, default=1, help=argparse.SUPPRESS)
    return p.parse_args()


def print_table(results: dict[str, Counts]) -> None:
    service = results[SERVICE]
    print(
        "| variant | instructions per request | service minus this | % | "
        "L2 misses per request | service minus this | % |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, value in results.items():
        if name in (PLAIN_PROTOCOL, EDGE_PROTOCOL):
            continue
        cells = []
        for whole, part in zip(service, value, strict=True):
            delta = whole - part
            cells += [f"{part:,.0f}", f"{delta:,.0f}", f"{100 * delta / whole:.1f}"]
        print(f"| {name} | {' | '.join(cells)} |")
    plain, edge = results[PLAIN_PROTOCOL], results[EDGE_PROTOCOL]
    print("\n| server protocol, one keep-alive request | instructions | L2 misses |")
    print("| --- | ---: | ---: |")
    print(f"| {PLAIN_PROTOCOL} | {plain.instructions:,.0f} | {plain.l2_misses:,.0f} |")
    print(f"| {EDGE_PROTOCOL} | {edge.instructions:,.0f} | {edge.l2_misses:,.0f} |")
    whole = service.instructions + plain.instructions
    added = edge.instructions - plain.instructions
    print(
        f"\nthe edge limits add {added:,.0f} instructions a request: "
        f"{100 * added / whole:.1f}% of a /predict with uvicorn's protocol "
        f"({whole:,.0f} = service + protocol)"
    )


def main() -> int:
    args = parse_args()
    if args.child is not None:
        child(args.child, args.count)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("scripts.bench.layers: needs valgrind (apt-get install valgrind)")
    print(f"{args.requests:,} requests per variant, counted by valgrind's cachegrind (L2 {L2})\n")
    measure: Callable[[str], Counts] = lambda variant: per_request(variant, args.requests)  # noqa: E731
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(VARIANTS, pool.map(measure, VARIANTS), strict=True))
    print_table(results)
    if args.json is not None:
        as_json = {name: value._asdict() for name, value in results.items()}
        args.json.write_text(json.dumps(as_json, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
