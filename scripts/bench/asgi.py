"""In-process cost of one request through the ASGI apps, without a server or a socket.

    python -m scripts.bench.asgi [--requests N] [--rounds R] [--quick]

Calls each app directly with one POST /predict (the docs page's benign example) many times in a
row and reports the median over interleaved rounds of microseconds per request:
  - the service, as `create_app` builds it, with the access log on (LOG_LEVEL=info, the
    default) and off (warning), with API_KEY set (the request carries the key), with
    LOG_FORMAT=json, without its Prometheus metrics and X-Request-ID middleware (what those
    cost: `Observed(metrics=False)`, which still writes the access log, and no RequestId), and
    with its routes in an included APIRouter instead of on the app;
  - the same service with plain FastAPI routes (FastAPI's own request handler, no direct call):
    what /predict cost before app/api/bodies.py;
  - the two baselines of scripts/bench/http_load.py: FastAPI with the same body model answering
    a constant, and a bare Starlette constant endpoint.
This is where HTTP time goes inside the Python process; scripts/bench/http_load.py measures the
whole stack.
The record of predictions is off (RECORD=false) in every variant: its commit is measured by
scripts/bench/record.py and scripts/bench/ab.py.
Access-log lines go to a temporary file, as a server's would go to its log. Run it with
PROMETHEUS_MULTIPROC_DIR set to an empty directory to write the metrics to files, as under
`python -m app` (without it they stay in the process, which is cheaper); it says which.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from app.core.config import Settings
from app.main import create_app
from app.middleware.observed import Observed
from app.middleware.request_id import RequestId
from app.openapi.examples import BENIGN
from model.artifact import DEFAULT_ARTIFACT_PATH
from scripts.bench.baselines import fastapi_constant, starlette_constant
from scripts.bench.common import machine_info, median, print_machine
from scripts.cli import OneLineParser, positive_int
from tests.plain_fastapi import plain_fastapi_app

API_KEY: Final = "bench-key"
BODY: Final = json.dumps(BENIGN).encode()
ASGIApp = Callable[..., Any]


def scope(api_key: bool) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    if api_key:
        headers.append((b"x-api-key", API_KEY.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def request(app: ASGIApp, template: dict[str, Any]) -> int:
    """One POST /predict; its status."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(template), receive, send)
    return status


async def start(app: ASGIApp) -> "asyncio.Task[None]":
    """Run the app's lifespan startup (the service loads its model there); the lifespan task,
    which must be kept until the end."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    started = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not started.done():
            started.set_result(message)

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, events.get, send)
    )
    message = await started
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"scripts.bench.asgi: startup failed: {message}")
    return task


def _settings(log_level: str, api_key: str | None = None, log_format: str = "text") -> Settings:
    return Settings.model_validate(
        {
            "model_path": DEFAULT_ARTIFACT_PATH,
            "log_level": log_level,
            "api_key": api_key,
            "log_format": log_format,
            # Without the record: its durable commit (an fsync) would be most of what is timed
            # here; scripts/bench/ab.py and scripts/bench/record.py measure what it costs.
            "record": False,
        }
    )


def service(log_level: str, api_key: str | None = None, log_format: str = "text") -> ASGIApp:
    return create_app(_settings(log_level, api_key, log_format))


def reconfigure(app: FastAPI, cls: object, **changes: Any) -> None:
    """Give the app's middleware `cls` these keyword arguments instead (Starlette builds the
    middleware stack from `user_middleware` on the first request)."""
    app.user_middleware = [
        Middleware(m.cls, *m.args, **{**m.kwargs, **changes}) if m.cls is cls else m
        for m in app.user_middleware
    ]


def unobserved_service() -> ASGIApp:
    """The service without request metrics (`Observed(metrics=False)`: its access log stays)
    and without request ids (no RequestId)."""
    app = create_app(_settings("info"))
    reconfigure(app, Observed, metrics=False)
    request_id: object = RequestId  # m.cls is typed as a factory
    app.user_middleware = [m for m in app.user_middleware if m.cls is not request_id]
    return app


def routed_service() -> ASGIApp:
    """The service with its routes in an included APIRouter, FastAPI's idiom, instead of on the
    app (FastAPI 0.165 matches an included router through a route of its own)."""
    app = create_app(_settings("info"))
    router = APIRouter()
    router.routes.extend(r for r in app.router.routes if isinstance(r, APIRoute))
    app.router.routes = [r for r in app.router.routes if not isinstance(r, APIRoute)]
    app.include_router(router)
    return app


@contextlib.contextmanager
def stderr_to_file() -> Iterator[None]:
    """Send stderr (the access log) to a temporary file, line-buffered as a server's is."""
    with tempfile.TemporaryFile("w", buffering=1) as log:
        saved, sys.stderr = sys.stderr, log
        try:
            yield
        finally:
            sys.stderr = saved


async def us_per_request(app: ASGIApp, template: dict[str, Any], n: int) -> float:
    begin = time.perf_counter()
    for _ in range(n):
        await request(app, template)
    return (time.perf_counter() - begin) / n * 1e6


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    apps: dict[str, tuple[ASGIApp, bool]] = {
        "service /predict": (service("info"), False),
        "service /predict, access log off": (service("warning"), False),
        "service /predict, API_KEY set": (service("info", API_KEY), True),
        "service /predict, LOG_FORMAT=json": (service("info", log_format="json"), False),
        "service /predict, no metrics, no ids": (unobserved_service(), False),
        "service /predict, routes in an APIRouter": (routed_service(), False),
        "service /predict, FastAPI's handler": (plain_fastapi_app(_settings("info")), False),
        "fastapi constant": (fastapi_constant(), False),
        "starlette constant": (starlette_constant(), False),
    }
    lifespans = []
    for name, (app, keyed) in apps.items():
        lifespans.append(await start(app))
        status = await request(app, scope(keyed))
        if status != 200:
            raise SystemExit(f"scripts.bench.asgi: {name} answered {status}")
    results: dict[str, list[float]] = {name: [] for name in apps}
    for r in range(args.rounds):
        order = list(apps) if r % 2 == 0 else list(apps)[::-1]
        for name in order:
            app, keyed = apps[name]
            await us_per_request(app, scope(keyed), args.requests // 10)  # warm-up
            results[name].append(await us_per_request(app, scope(keyed), args.requests))
    for task in lifespans:
        task.cancel()
    return results


def parse_args() -> argparse.Namespace:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=positive_int, default=5000, help="requests per measurement")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds")
    p.add_argument("--quick", action="store_true", help="1,000 requests, 3 rounds")
    args = p.parse_args()
    if args.quick:
        args.requests, args.rounds = 1000, 3
    return args


def main() -> int:
    args = parse_args()
    os.environ.pop("API_KEY", None)
    print_machine(machine_info())
    print(f"{args.rounds} interleaved rounds of {args.requests:,} requests per app")
    storage = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    print(f"metrics stored in {'files in ' + storage if storage else 'the process'}")
    with stderr_to_file():
        results = asyncio.run(run(args))
    constant = median(results["fastapi constant"])
    print(f"\n{'POST /predict, in process':40}{'median us':>11}{'constant / this':>17}")
    for name, values in results.items():
        print(f"{name:40}{median(values):>11.1f}{constant / median(values):>17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
