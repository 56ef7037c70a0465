"""`python -m app`: serve with uvicorn, configured from the environment (see app/core/config.py).

`python -m app --help` lists the settings with their defaults and the exit statuses
(`EXIT_STATUSES`); `python -m app audit ...` runs the record's tools (app/record/cli.py);
any other argument is an error. Bad arguments or settings, or a bad model
artifact, end the process with one line on stderr before uvicorn starts: exit code 2 for
arguments and settings, 1 for the artifact. A stop by SIGTERM or Ctrl+C exits 0. A PORT uvicorn
cannot bind (one in use) exits 3, uvicorn's own startup failure status.

The artifact is read and verified here, once, and its bytes handed to every worker (a respawned
one too): no worker reads MODEL_PATH, so all serve the model verified at startup until the
service restarts, whatever happens to the file (app.core.dataplane.PinnedArtifact).

Every connection is held to the request deadlines and limits of app/server/edge.py.

Before any worker starts it prepares PROMETHEUS_MULTIPROC_DIR (app/observability/metrics_dir.py)
and, unless
METRICS_PORT is 0, serves the workers' Prometheus metrics on METRICS_HOST:METRICS_PORT from a
process of its own (app/server/exposition.py), logging its address; a port it cannot bind
ends it
with one line (saying how to move it) and exit code 1.

On SIGTERM the server drains its connections for up to SHUTDOWN_DRAIN_SECONDS before closing
them (app/server/serve.py), so a request a client has already sent is answered, not reset.

The HTTP parser is httptools; the event loop depends on the number of workers (`event_loop`),
both choices measured with wrk at 64 connections on /predict:
- One worker runs on asyncio's own loop, not uvloop (uvicorn's default when installed): for the
  same throughput, uvloop kept some requests waiting far longer than their share, p99 about 11
  times p50 (147 ms against 13 ms), where asyncio keeps it under 2 times.
- Several workers run on uvloop. uvicorn then binds the socket itself, without naming the TCP
  protocol, and asyncio (unlike uvloop) sets TCP_NODELAY only on connections from a socket that
  does: each response waited about 40 ms for the client's delayed ACK (1,450 req/s against 8,700).
"""

import functools
import logging
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from app.core.config import Settings, SettingsError, load_settings
from app.observability.logs import uvicorn_log_config
from app.observability.metrics_dir import metrics_dir
from model.artifact import ArtifactError

if TYPE_CHECKING:
    from app.core.dataplane import PinnedArtifact
    from app.server.edge import EdgeConfig, EdgeLimits

logger = logging.getLogger("uvicorn.error")  # configured by uvicorn's Config, as its own lines

PROG = "malignancy-predictor"
# How long uvicorn's supervisor waits for a worker to answer its ping before killing it as hung.
# A worker answers only once its new interpreter has imported the service: about 1 s here, but
# over uvicorn's default 5 s on a loaded 2-core machine, where starting workers were killed.
WORKER_PING_SECONDS: Final = 15
USAGE: Final = (
    "usage: python -m app [--help] | python -m app audit {verify,replay,export,prune} ..."
)
# Every status `python -m app` ends with, shown by --help: scripts and supervisors branch on them.
EXIT_STATUSES: Final[Mapping[int, str]] = {
    0: "stopped by SIGTERM or Ctrl+C (and --help)",
    1: "the model artifact cannot be loaded or verified, or the Prometheus metrics server or its"
    " directory cannot be set up (METRICS_PORT in use, PROMETHEUS_MULTIPROC_DIR unusable)",
    2: "an argument other than --help, or a setting with a bad value",
    3: "the service did not start: PORT in use or not bindable on HOST (uvicorn's status)",
}


def event_loop(workers: int) -> str:
    """asyncio's loop for one worker, uvloop for several (see above)."""
    return "asyncio" if workers == 1 else "uvloop"


def help_text() -> str:
    """The usage line and every setting with its default, from Settings itself."""
    lines = [
        USAGE,
        "",
        "Serve the malignancy predictor over HTTP. It takes no other arguments: it is configured",
        "by these environment variables (name, default, meaning). `python -m app audit --help`",
        "lists the tools of the record of predictions, which read the same settings.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default in (None, "", ()) else str(field.default)
        lines.append(f"  {name.upper():<24} {default}")
        lines.append(f"      {field.description}")
    lines += ["", "Exit status:"]
    for status, meaning in EXIT_STATUSES.items():
        lines += textwrap.wrap(
            meaning, width=96, initial_indent=f"  {status:<4}", subsequent_indent=" " * 6
        )
    return "\n".join(lines)


def limits(settings: Settings) -> "EdgeLimits":
    from app.server.edge import EdgeLimits

    return EdgeLimits(
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        max_connections=settings.max_connections,
        send_timeout=settings.send_timeout_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["audit"]:  # the record's tools (app/record/cli.py)
        from app.record.cli import main as audit

        return audit(args[1:])
    if args in (["--help"], ["-h"]):
        print(help_text())
        return 0
    if args:
        print(
            f"{PROG}: takes no arguments but --help (settings are environment variables); {USAGE}",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        with metrics_dir(settings.prometheus_multiproc_dir):
            return run(settings)
    except OSError as exc:  # MetricsDirError, MetricsServerError: one line each
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def run(settings: Settings) -> int:
    # Imported only now: prometheus_client picks its storage from PROMETHEUS_MULTIPROC_DIR,
    # which metrics_dir has just set, when it is first imported (app.core.errors, and so the app,
    # the protocol and the served model, import it).
    from app.core.dataplane import PinnedArtifact
    from app.server.exposition import start_metrics_server
    from app.server.serve import EarlyStop, serve

    early = EarlyStop()  # a stop from here on ends the service cleanly, once it has started

    try:
        pinned = PinnedArtifact.read(settings.model_path, settings.model_sha256)
    except ArtifactError as exc:
        print(f"{PROG}: cannot load the model: {exc}", file=sys.stderr)
        return 1
    config = edge_config(settings, pinned)  # configures logging: the line below uses it
    metrics = None
    if settings.metrics_port:
        metrics = start_metrics_server(
            settings.metrics_host,
            settings.metrics_port,
            config.edge_limits,
            settings.log_format,
            settings.log_level,
        )
        logger.info("Serving Prometheus metrics on %s (METRICS_HOST, METRICS_PORT)", metrics.url)
    try:
        return serve(config, drain_seconds=settings.shutdown_drain_seconds, early=early)
    finally:
        if metrics is not None:
            metrics.stop()


def edge_config(settings: Settings, pinned: "PinnedArtifact") -> "EdgeConfig":
    """Workers (spawned processes) get this Config pickled: the settings and the artifact's
    bytes travel with it, so a worker reads neither the environment nor MODEL_PATH again."""
    from app.main import create_app
    from app.server.edge import EdgeConfig
    from app.v2.routes import PREFIX as V2_PREFIX

    return EdgeConfig(
        functools.partial(create_app, settings, pinned),
        limits=limits(settings),
        protocol_prefix=V2_PREFIX,  # refusals on /v2 paths take the protocol's error shape
        mount_path=settings.root_path,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the app writes its own access log line
        lifespan="on",
        loop=event_loop(settings.workers),
        log_config=uvicorn_log_config(settings.log_format),
        timeout_worker_healthcheck=WORKER_PING_SECONDS,
    )


if __name__ == "__main__":
    sys.exit(main())
