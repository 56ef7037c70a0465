"""The Prometheus exposition on its own port (METRICS_HOST:METRICS_PORT), served by `python -m app`.

It runs in a process of its own, started by `python -m app` (app/__main__.py) and stopped with
it (or when it dies: app/server/process_guard.py). In a thread of the worker, as with one worker it
once was, each scrape (reading and adding up every worker's files, about 1-3 ms of CPU) held
the worker's GIL: 8 scrapers cut /predict's throughput 5x and 500 half-sent requests held 500
threads. In its own process a scrape costs /predict only the CPU it takes (see the figures in
docs/operations.md, "What a scrape costs").

It is served by uvicorn with the API port's edge (app/server/edge.py): header and body
deadlines, header limits, a cap of METRICS_MAX_CONNECTIONS connections and a backlog of
METRICS_BACKLOG. It reads every worker's files in PROMETHEUS_MULTIPROC_DIR
(app/observability/metrics_dir.py), so each scrape adds up all of them; a file it cannot read (cut
short by a
worker killed while creating it) is left out, not the whole scrape. It is a separate port, as in
MLServer and Triton, so that it is not behind API_KEY, not part of the API's contract (/metrics
is the model's validation metrics), and need not be published: it listens on loopback unless
METRICS_HOST says otherwise.
"""

import contextlib
import dataclasses
import gzip
import logging
import multiprocessing
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

logger = logging.getLogger("app.metrics")

PROCESS_NAME: Final = "metrics-server"  # its name in ps and top
METRICS_MAX_CONNECTIONS: Final = 32
METRICS_BACKLOG: Final = 64
STOP_SECONDS: Final = 5.0
HEADER_BYTES: Final = 8  # a metrics file's header: the bytes it uses, then padding
PLAIN_TEXT: Final = b"text/plain; version=0.0.4; charset=utf-8"
# 20 KB of text: level 1 takes 0.1 ms, the default 9 0.23 ms, for 300 bytes more (of 2,800).
GZIP_LEVEL: Final = 1


class MetricsServerError(OSError):
    """The exposition cannot listen; the message is one line saying how to move it."""


@dataclass
class MetricsServer:
    """The exposition's process, and where it listens."""

    process: multiprocessing.process.BaseProcess
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within STOP_SECONDS; its gauges go."""
        self.process.terminate()
        self.process.join(STOP_SECONDS)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        from app.server.process_guard import forget_process

        if self.process.pid is not None:
            forget_process(self.process.pid)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or MetricsServerError saying how to choose another."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise MetricsServerError(_cannot(host, port, exc)) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(METRICS_BACKLOG)
    except OSError as exc:
        sock.close()
        raise MetricsServerError(_cannot(host, port, exc)) from None
    return sock


def _cannot(host: str, port: int, exc: OSError) -> str:
    return (
        f"cannot serve metrics on {host}:{port} (METRICS_HOST, METRICS_PORT):"
        f" {exc.strerror or exc}; set METRICS_PORT to a free port, or METRICS_PORT=0 for none"
    )


def start_metrics_server(
    host: str, port: int, limits: Any = None, log_format: str = "text", log_level: str = "info"
) -> MetricsServer:
    """Bind host:port here (so that a clash ends startup with one line) and serve the
    exposition from it in a new process. `limits`: the API's EdgeLimits (a dataclass), which
    its connections are held to too, but for a smaller cap; the log settings as the API's."""
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    spawn = multiprocessing.get_context("spawn")
    process = spawn.Process(
        target=serve_metrics,
        # Plain values: unpickling the limits' class would import the app's modules, and with
        # them create metric files, before the process could say where its values go.
        args=(sock, dataclasses.asdict(limits) if limits else {}, (log_format, log_level)),
        kwargs={"parent_pid": os.getpid()},
        name="metrics",
        daemon=True,
    )
    try:
        process.start()
    finally:
        sock.close()  # the process has its own copy
    return MetricsServer(process, host, bound_port)


def serve_metrics(
    sock: socket.socket, limits: dict[str, Any], logs: tuple[str, str], parent_pid: int
) -> None:
    """The exposition process: uvicorn with the API's edge, on `sock`, until SIGTERM."""
    from app.server.process_guard import exit_with_parent, name_process

    exit_with_parent(parent_pid)
    name_process(PROCESS_NAME)
    # This process reads the workers' files; its own values (the modules below define the
    # service's metrics) stay in memory, taking no space there.
    directory = os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    from prometheus_client import CollectorRegistry
    from uvicorn import Server

    from app.observability.logs import configure_logging, uvicorn_log_config
    from app.server.edge import EdgeConfig, EdgeLimits

    log_format, log_level = logs
    configure_logging(log_level, log_format)
    registry = CollectorRegistry()
    registry.register(ReadableFilesCollector(directory))
    api = EdgeLimits(**limits)
    edge = dataclasses.replace(
        api, max_connections=min(api.max_connections, METRICS_MAX_CONNECTIONS)
    )
    config = EdgeConfig(
        exposition_app(registry, directory),
        limits=edge,
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=uvicorn_log_config(log_format),
        loop="asyncio",
        backlog=METRICS_BACKLOG,
        timeout_keep_alive=5,
    )
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run(sockets=[sock])


def exposition_app(registry: Any, directory: str) -> Any:
    """The ASGI app of the exposition: a plain GET that takes the text format 0.0.4 is answered
    by app/observability/text_exposition.py (a quarter of the CPU to render); anything else (a
    query, a client that takes only OpenMetrics or text 1.0.0, files that renderer does not
    read) by prometheus-client's app over `registry`.

    Prometheus asks for OpenMetrics first but takes 0.0.4: the text format is answered then,
    as it holds everything these files can (no exemplars, no _created in multiprocess mode), and
    prometheus-client's OpenMetrics costs 1.6 times its text format on top."""
    from prometheus_client import make_asgi_app

    from app.observability.text_exposition import TextExposition

    upstream = make_asgi_app(registry)
    text = TextExposition(directory)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or ())
        plain = scope["method"] == "GET" and not scope.get("query_string")
        if not plain or not takes_plain_text(headers.get(b"accept", b"").decode("latin-1")):
            await upstream(scope, receive, send)
            return
        try:
            body = text.render()
        except Exception:  # Unsupported, or a file it cannot read: the collector leaves that
            await upstream(scope, receive, send)  # file out and says so, the scrape goes on
            return
        answer = [(b"content-type", PLAIN_TEXT)]
        if b"gzip" in headers.get(b"accept-encoding", b"").lower():
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            answer.append((b"content-encoding", b"gzip"))
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": body})

    return app


def takes_plain_text(accept: str) -> bool:
    """Whether a client with this Accept header takes the text format 0.0.4: no header, `*/*`,
    `text/*`, or `text/plain` with no version or version 0.0.4."""
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        version = next((p[8:] for p in params if p.startswith("version=")), None)
        if media in ("*/*", "text/*") or (media == "text/plain" and version in (None, "0.0.4")):
            return True
    return False


class ReadableFilesCollector:
    """prometheus-client's MultiProcessCollector over the files it can read.

    A file shorter than its header (a worker killed between creating and filling it) or cut
    short otherwise would make prometheus-client fail the whole scrape; it is left out, and said
    once.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path or os.environ["PROMETHEUS_MULTIPROC_DIR"])
        self.skipped: set[str] = set()

    def collect(self) -> Iterable[Any]:
        files = [str(file) for file in self.path.glob("*.db") if _readable(file)]
        try:
            return list(_merge(files))
        except Exception as exc:  # struct.error, RuntimeError, OSError: find the file
            return self._merge_each(files, exc)

    def _merge_each(self, files: list[str], first: Exception) -> list[Any]:
        good = []
        for file in files:
            try:
                _merge([file])
            except Exception:  # any unreadable file is left out, whatever broke
                if file not in self.skipped:
                    self.skipped.add(file)
                    logger.error("metrics: left out %s, unreadable (%s)", file, first)
                continue
            good.append(file)
        return list(_merge(good))


def _merge(files: list[str]) -> Iterable[Any]:
    from prometheus_client import multiprocess

    return multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def _readable(file: Path) -> bool:
    try:
        return file.stat().st_size >= HEADER_BYTES
    except OSError:  # gone since the glob (a dead worker's live gauges)
        return False
