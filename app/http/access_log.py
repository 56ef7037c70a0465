"""The access log: one line per request with method, path, status, latency and request id.

No request body, query string or header is logged.

With LOG_FORMAT=json the line goes through `logging` as a record with the fields method, route
(the template), status, duration_ms and client, which app/logging_config.py writes as JSON.

The access line is formatted here, in the same layout as the service's other log lines, and
written straight to stderr, rather than passed through `logging`: a LogRecord, its formatting
and the handler's lock cost about 13 us per request, the line as written here about 2 us. The
"app.access" logger still decides whether the line is written (LOG_LEVEL info or debug). Each
line is written when its request ends, not buffered, so none is lost if the process dies (under
`python -m app`, unless stderr is too slow to take it then: app/log_writer.py queues it). A line
that cannot be written is counted (predictor_log_lines_lost_total), never raised.
"""

import functools
import logging
import sys
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.answered import sent_status
from app.http.request_id import current_request_id
from app.http.routes import route_template
from app.logging_config import lost_log_line

DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # logging's default asctime, before ",milliseconds"

access_logger = logging.getLogger("app.access")


class AccessLog:
    """Pure ASGI middleware writing `METHOD /path STATUS 0.42ms request_id=ID` once per HTTP
    request, or with `json_lines` a record with those fields for the JSON formatter.

    STATUS is what the client got (app/http/answered.py): 499 if it left before its answer
    began; a request the edge answered instead is logged by the edge, not here.
    """

    def __init__(self, app: ASGIApp, json_lines: bool = False) -> None:
        self.app = app
        self.json_lines = json_lines
        _FORMAT.json_lines = json_lines  # the edge's lines (log_access) follow the app's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500  # what the server answers if the app fails before responding

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            sent = sent_status(scope, status)
            if sent is not None:
                elapsed_ms = (time.perf_counter() - start) * 1000.0
                route = route_template(scope, root_path) if self.json_lines else ""
                log_access(
                    scope["method"],
                    _path(scope),
                    sent,
                    elapsed_ms,
                    current_request_id(),
                    route,
                    scope,
                    self.json_lines,
                )


class _Format:
    json_lines = False


_FORMAT: Final = _Format()


def log_access(
    method: str,
    path: str,
    status: int,
    elapsed_ms: float | None,
    request_id: str | None,
    route: str,
    scope: Scope | None = None,
    json_lines: bool | None = None,
) -> None:
    """One access line. `elapsed_ms` None: an answer of the edge's, which has no app time."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    took = "-" if elapsed_ms is None else f"{elapsed_ms:.2f}ms"
    message = f"{method} {path} {status} {took}"
    if _FORMAT.json_lines if json_lines is None else json_lines:
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": None if elapsed_ms is None else round(elapsed_ms, 3),
            "client": None if scope is None else _client(scope),
        }
        if request_id is not None:
            fields["request_id"] = request_id
        access_logger.info(message, extra=fields)
    else:
        line = f"{message} request_id={request_id}"
        try:
            sys.stderr.write(f"{_timestamp()} INFO {access_logger.name}: {line}\n")
        except (OSError, ValueError):  # a closed pipe, a full disk, a closed stream
            lost_log_line()


def _timestamp() -> str:
    """Local time as logging's default asctime shows it, `2025-01-31 12:00:00,123`."""
    now = time.time()
    second = int(now)
    return f"{_local_second(second)},{int((now - second) * 1000):03d}"


@functools.lru_cache(maxsize=1)
def _local_second(second: int) -> str:  # strftime once a second, not once a request
    return time.strftime(DATE_FORMAT, time.localtime(second))


def _path(scope: Scope) -> str:
    # The raw (still percent-encoded) path cannot smuggle a newline into the log.
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")
    return str(scope["path"]).encode("unicode_escape").decode("ascii")


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    if client is None:
        return None
    host, port = client
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
