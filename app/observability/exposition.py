"""The Prometheus exposition on its own port (METRICS_PORT), served by `python -m app`.

It runs in the process that `python -m app` starts: with one worker that is the worker itself,
with several it is uvicorn's supervisor, so a scrape never waits for a busy worker and always
reaches the same process. Either way it reads every worker's files in PROMETHEUS_MULTIPROC_DIR
(app/observability/metrics_dir.py), so each scrape adds up all of them. It is a separate port,
as in MLServer
and Triton, so that it is not behind API_KEY, not part of the API's contract (/metrics is the
model's validation metrics), and need not be published.
"""

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


class MetricsServerError(OSError):
    """The exposition cannot listen; the message is one line."""


def start_metrics_server(host: str, port: int) -> tuple[WSGIServer, Thread]:
    """Serve GET /metrics (every worker's metrics, added up) on host:port in a daemon thread."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsServerError(
            f"cannot serve metrics on {host}:{port} (METRICS_PORT): {exc.strerror or exc}"
        ) from None
