"""The access log: one line per request with method, path, status and latency.

No request body, query string or header is logged.

The access line is formatted here, in the same layout as the service's other log lines, and
written straight to stderr, rather than passed through `logging`: a LogRecord, its formatting
and the handler's lock cost about 13 us per request, the line as written here about 2 us. The
"app.access" logger still decides whether the line is written (LOG_LEVEL info or debug). Each
line is written when its request ends, not buffered, so none is lost if the process dies.
"""

import functools
import logging
import sys
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # logging's default asctime, before ",milliseconds"

access_logger = logging.getLogger("app.access")


class AccessLog:
    """Pure ASGI middleware writing `METHOD /path STATUS 0.42ms` once per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers if the app fails before responding

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            message = f"{scope['method']} {_path(scope)} {status} {elapsed_ms:.2f}ms"
            sys.stderr.write(f"{_timestamp()} INFO {access_logger.name}: {message}\n")


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
