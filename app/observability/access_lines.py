"""The access log's lines: the format and the writing, shared by the middleware that observes
each request (app/middleware/observed.py) and the edge's own answers (app/server/edge_answers.py).

The line is formatted here, in the same layout as the service's other log lines, and written
straight to stderr rather than passed through `logging`: a LogRecord, its formatting and the
handler's lock cost about 13 us per request, the line as written here about 2 us. The
"app.access" logger still decides whether the line is written (LOG_LEVEL info or debug). A line
that cannot be written is counted (predictor_log_lines_lost_total), never raised.
"""

import functools
import logging
import sys
import time
from typing import Final

from starlette.types import Scope

from app.observability.logs import lost_log_line

DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # logging's default asctime, before ",milliseconds"

access_logger = logging.getLogger("app.access")


class _Format:
    json_lines = False


_FORMAT: Final = _Format()


def set_json_lines(json_lines: bool) -> None:
    _FORMAT.json_lines = json_lines


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


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    if client is None:
        return None
    host, port = client
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
