"""Logging setup and the access log: one line per request with method, path, status and latency.

No request body, query string or header is logged.
"""

import logging
import sys
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME: Final = "app"
HANDLER_NAME: Final = "malignancy-predictor"
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

access_logger = logging.getLogger("app.access")


def configure_logging(level: str) -> None:
    """Send the service's logs ("app.*") to stderr at `level`; silence uvicorn's access log,
    which the AccessLog middleware replaces. Safe to call more than once."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(handler.name == HANDLER_NAME for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.name = HANDLER_NAME
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


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
            access_logger.info("%s %s %d %.2fms", scope["method"], _path(scope), status, elapsed_ms)


def _path(scope: Scope) -> str:
    # The raw (still percent-encoded) path cannot smuggle a newline into the log.
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")
    return str(scope["path"]).encode("unicode_escape").decode("ascii")
