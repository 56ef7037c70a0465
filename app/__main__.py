"""`python -m app`: serve with uvicorn, configured from the environment (see app/settings.py).

Bad settings or a bad model artifact end the process with one line on stderr, before uvicorn
starts: exit code 2 for settings, 1 for the artifact.

Before any worker starts it prepares PROMETHEUS_MULTIPROC_DIR (app/metrics_dir.py) and, unless
METRICS_PORT is 0, serves the workers' Prometheus metrics on HOST:METRICS_PORT from this process
(app/metrics_server.py); a port it cannot bind ends it with one line and exit code 1.

On SIGTERM the server drains its connections for up to SHUTDOWN_DRAIN_SECONDS before closing
them (app/http/server.py), so a request a client has already sent is answered, not reset.

The HTTP parser is httptools; the event loop depends on the number of workers (`event_loop`),
both choices measured with wrk at 64 connections on /predict:
- One worker runs on asyncio's own loop, not uvloop (uvicorn's default when installed): for the
  same throughput, uvloop kept some requests waiting far longer than their share, p99 about 11
  times p50 (147 ms against 13 ms), where asyncio keeps it under 2 times.
- Several workers run on uvloop. uvicorn then binds the socket itself, without naming the TCP
  protocol, and asyncio (unlike uvloop) sets TCP_NODELAY only on connections from a socket that
  does: each response waited about 40 ms for the client's delayed ACK (1,450 req/s against 8,700).
"""

import sys
from typing import Final

import uvicorn

from app.http.server import serve
from app.logging_config import uvicorn_log_config
from app.metrics_dir import metrics_dir
from app.predictor import ServedModel
from app.settings import Settings, SettingsError, load_settings
from model.artifact import ArtifactError

PROG = "malignancy-predictor"
HTTP_PARSER: Final = "httptools"


def event_loop(workers: int) -> str:
    """asyncio's loop for one worker, uvloop for several (see above)."""
    return "asyncio" if workers == 1 else "uvloop"


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        ServedModel.load(settings.model_path)  # fail fast; each worker loads it in its lifespan
    except ArtifactError as exc:
        print(f"{PROG}: cannot load the model: {exc}", file=sys.stderr)
        return 1
    try:
        with metrics_dir(settings.prometheus_multiproc_dir):
            return run(settings)
    except OSError as exc:  # MetricsDirError, MetricsServerError: one line each
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def run(settings: Settings) -> int:
    # Imported only now: prometheus_client picks its storage from PROMETHEUS_MULTIPROC_DIR,
    # which metrics_dir has just set, when it is first imported.
    from app.metrics_server import start_metrics_server

    metrics = None
    if settings.metrics_port:
        metrics, _ = start_metrics_server(settings.host, settings.metrics_port)
    try:
        return serve(uvicorn_config(settings), drain_seconds=settings.shutdown_drain_seconds)
    finally:
        if metrics is not None:
            metrics.shutdown()


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    # Workers re-create the app from the import string, reading the same environment.
    return uvicorn.Config(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the app writes its own access log line
        lifespan="on",
        loop=event_loop(settings.workers),
        http=HTTP_PARSER,
        log_config=uvicorn_log_config(settings.log_format),
    )


if __name__ == "__main__":
    sys.exit(main())
