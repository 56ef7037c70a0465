"""The edge's alternatives side by side: the hostile tables and wrk on /predict against each.

    python -m scripts.bench.edge_alternatives [--duration S] [--rounds R] [--tables] [--no-load]

Alternatives (each serving app.main:create_app with one worker on loopback):
- edge: `python -m app`, uvicorn's httptools protocol subclassed (app/server/edge.py);
- uvicorn-h11: uvicorn's own h11 protocol, no edge of ours;
- hypercorn: Hypercorn (h11), its defaults;
- granian: Granian (Rust, hyper), its defaults;
- nginx+edge: nginx in front of `python -m app` (see NGINX_CONF: the limits set to the
  service's own, buffering the request body, a keep-alive upstream).
hypercorn, granian and nginx are not the project's dependencies: install them by hand
(pip install hypercorn granian; apt-get install nginx-light).

wrk POSTs /predict at 8 connections in interleaved rounds (scripts/bench/http_load.py's Lua
script); prints each one's median req/s and p99. With --tables, runs the edge's hostile tables
(tests/system/server/test_edge.py, tests/system/server/edge/test_hostile_table.py) against each
through this module's pytest plugin, which replaces the tables' server with the alternative, and
prints how many cases pass. A case asserts the service's JSON error shape, so an alternative
failing it may still have refused the request with another shape: the figures say which
behaviour holds, not which server is safe.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Final

import pytest

from scripts.bench.common import REPO_ROOT, median
from scripts.bench.http_load import LUA_TEMPLATE, Server, bodies, run_wrk, running
from scripts.cli import OneLineParser, positive_float, positive_int
from tests import live_server
from tests.live_server import LOOPBACK, LiveServer, free_port, server_env

ALTERNATIVE_VARIABLE: Final = "EDGE_ALTERNATIVE"
PLUGIN: Final = "scripts.bench.edge_alternatives"  # this module, also when run as __main__
FACTORY: Final = "app.main:create_app"
TABLES: Final = (
    "tests/system/server/test_edge.py",
    "tests/system/server/edge/test_hostile_table.py",
)
COMMANDS: Final[dict[str, str]] = {
    "edge": f"exec {sys.executable} -m app",
    "uvicorn-h11": (
        f"exec {sys.executable} -m uvicorn --factory {FACTORY} --http h11 --loop asyncio "
        "--host 127.0.0.1 --port $PORT --no-access-log"
    ),
    "hypercorn": f"exec {sys.executable} -m hypercorn --bind 127.0.0.1:$PORT '{FACTORY}()'",
    "granian": (
        f"exec {sys.executable} -m granian --interface asgi --factory --host 127.0.0.1 "
        f"--port $PORT --workers 1 {FACTORY}"
    ),
    "nginx+edge": f"exec {sys.executable} -m scripts.bench.edge_alternatives --nginx-front",
}
# The service's own limits (app/core/config.py), as nginx spells them; 499/408/413/414/400 are
# nginx's own answers (HTML), not the service's JSON.
NGINX_CONF: Final = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  client_header_timeout {header_timeout}ms;
  client_body_timeout {body_timeout}ms;
  send_timeout {send_timeout}ms;
  keepalive_timeout 5s;
  large_client_header_buffers 4 16k;
  client_max_body_size 9m;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port} backlog=2048;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def parse_args() -> argparse.Namespace:
    p = OneLineParser(prog="scripts.bench.edge_alternatives", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=positive_float, default=5.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument("--tables", action="store_true", help="also run the hostile tables")
    p.add_argument("--no-load", action="store_true", help="skip wrk")
    p.add_argument("--nginx-front", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--only", nargs="*", choices=sorted(COMMANDS), help="these alternatives")
    return p.parse_args()


def command(name: str) -> list[str]:
    return ["sh", "-c", COMMANDS[name]]


def milliseconds(seconds: str) -> int:
    return round(float(seconds) * 1000)  # nginx takes no fraction of a second


# -- nginx in front --------------------------------------------------------------------------
def nginx_front() -> int:
    """Serve `python -m app` on a private port behind nginx on PORT until SIGTERM."""
    port, backend = os.environ["PORT"], str(free_port())
    env = {**os.environ, "PORT": backend}
    with tempfile.TemporaryDirectory(prefix="nginx-front-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=tmp,
                port=port,
                backend=backend,
                header_timeout=milliseconds(env.get("HEADER_TIMEOUT_SECONDS", "10")),
                body_timeout=milliseconds(env.get("BODY_TIMEOUT_SECONDS", "30")),
                send_timeout=milliseconds(env.get("SEND_TIMEOUT_SECONDS", "30")),
            )
        )
        app = subprocess.Popen([sys.executable, "-m", "app"], env=env, cwd=REPO_ROOT)
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp])

        def stop(signum: int, frame: FrameType | None) -> None:
            nginx.terminate()  # nginx's fast shutdown; the app drains on its SIGTERM
            app.terminate()

        signal.signal(signal.SIGTERM, stop)
        app.wait()
        nginx.wait()
    return 0


# -- the pytest plugin ----------------------------------------------------------------------
@contextmanager
def alternative_server(env: Mapping[str, str] | None = None, **_: Any) -> Iterator[LiveServer]:
    """tests.live_server.start_server, serving the alternative named by EDGE_ALTERNATIVE."""
    name = os.environ[ALTERNATIVE_VARIABLE]
    with live_server.start_server(env, command=command(name)) as server:
        yield server


def pytest_collection_modifyitems(items: Sequence[pytest.Item]) -> None:
    """Give every collected table module the alternative's server (a pytest hook)."""
    modules: set[ModuleType] = {item.module for item in items if isinstance(item, pytest.Function)}
    for module in modules:
        if hasattr(module, "start_server"):
            setattr(module, "start_server", alternative_server)  # noqa: B010 (a module)


def run_tables(name: str) -> tuple[int, int]:
    """(passed, failed) of the hostile tables against `name`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", PLUGIN, *TABLES],
        cwd=REPO_ROOT,
        env={**os.environ, ALTERNATIVE_VARIABLE: name},
        capture_output=True,
        text=True,
        check=False,
    )
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error)", tail)}
    return counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0)


# -- wrk ----------------------------------------------------------------------------------------
def run_load(names: Sequence[str], duration: float, rounds: int) -> dict[str, list[Any]]:
    results: dict[str, list[Any]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="edge-alt-") as tmp, ExitStack() as stack:
        lua = Path(tmp) / "predict.lua"
        lua.write_text(LUA_TEMPLATE.format(body=bodies()["/predict"].decode()))
        servers = {}
        for name in names:
            env = server_env({"HOST": LOOPBACK, "PORT": "{port}", "METRICS_PORT": "0"})
            server = Server(name, command(name), env)
            servers[name] = stack.enter_context(running(server, Path(tmp)))
        for i in range(rounds):
            order = list(names) if i % 2 == 0 else list(reversed(names))
            for name in order:
                results[name].append(run_wrk(f"{servers[name].url}/predict", lua, 8, duration))
    return results


def main() -> int:
    args = parse_args()
    if args.nginx_front:
        return nginx_front()
    names = args.only or list(COMMANDS)
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if missing:
        print(f"scripts.bench.edge_alternatives: not installed: {missing}", file=sys.stderr)
        return 2
    loads = {} if args.no_load else run_load(names, args.duration, args.rounds)
    for name, runs in loads.items():
        rps = median([r["rps"] for r in runs])
        p99 = median([r["p99_us"] for r in runs]) / 1000
        errors = sum(r["status"] + r["socket_errors"] for r in runs)
        print(f"{name:<12} /predict c8: {rps:8.0f} req/s, p99 {p99:6.2f} ms, errors {errors}")
    if args.tables:
        for name in names:
            began = time.monotonic()
            passed, failed = run_tables(name)
            took = time.monotonic() - began
            print(f"{name:<12} hostile tables: {passed} passed, {failed} failed ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
