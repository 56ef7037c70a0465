"""The access log: one line per request with method, path, status, latency and request id.

No request body, query string or header is logged.

With LOG_FORMAT=json the line goes through `logging` as a record with the fields method, route
(the template), status, duration_ms and client, which app/observability/logs.py writes as JSON.

The access line is formatted here, in the same layout as the service's other log lines, and
written straight to stderr, rather than passed through `logging`: a LogRecord, its formatting
and the handler's lock cost about 13 us per request, the line as written here about 2 us. The
"app.access" logger still decides whether the line is written (LOG_LEVEL info or debug). Each
line is written when its request ends, not buffered, so none is lost if the process dies (under
`python -m app`, unless stderr is too slow to take it then: app/observability/log_writer.py queues
it). A line
that cannot be written is counted (predictor_log_lines_lost_total), never raised.
"""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.request_id import current_request_id
from app.observability.access_lines import access_logger, log_access, set_json_lines
from app.observability.answered import route_template, sent_status


class AccessLog:
    """Pure ASGI middleware writing `METHOD /path STATUS 0.42ms request_id=ID` once per HTTP
    request, or with `json_lines` a record with those fields for the JSON formatter.

    STATUS is what the client got (app/observability/answered.py): 499 if it left before its answer
    began; a request the edge answered instead is logged by the edge, not here.
    """

    def __init__(self, app: ASGIApp, json_lines: bool = False) -> None:
        self.app = app
        self.json_lines = json_lines
        set_json_lines(json_lines)  # the edge's lines (log_access) follow the app's

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


def _path(scope: Scope) -> str:
    # The raw (still percent-encoded) path cannot smuggle a newline into the log.
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")
    return str(scope["path"]).encode("unicode_escape").decode("ascii")
