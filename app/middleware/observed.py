"""Each request observed once: its access-log line and its Prometheus metrics, from the one status
the client was actually sent, so that the log and the metrics cannot disagree.

The access log: one line per request with method, path, status, latency and request id. No
request body, query string or header is logged. With LOG_FORMAT=json the line goes through
`logging` as a record with the fields method, route (the template), status, duration_ms and
client, which app/observability/logs.py writes as JSON.

The access line is formatted in the same layout as the service's other log lines, and written
straight to stderr, rather than passed through `logging` (app/observability/access_lines.py): a
LogRecord, its formatting and the handler's lock cost about 13 us per request, the line as
written there about 2 us. The "app.access" logger still decides whether the line is written
(LOG_LEVEL info or debug). Each line is written when its request ends, not buffered, so none is
lost if the process dies (under `python -m app`, unless stderr is too slow to take it then:
app/observability/log_writer.py queues it). A line that cannot be written is counted
(predictor_log_lines_lost_total), never raised.

The metrics: count, duration and in-flight requests, by route template, method and status, in
this worker's tally (app/observability/prometheus.py), which writes them to the shared values
soon after. An error answer is counted under its type too.
"""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.request_id import current_request_id
from app.observability import prometheus as telemetry
from app.observability.access_lines import access_logger, log_access, set_json_lines
from app.observability.answered import route_template, sent_status


class Observed:
    """Pure ASGI middleware that wraps `send` once per HTTP request to learn the status the client
    got (app/observability/answered.py: 499 if it left before its answer began; 500 if the app
    failed before answering, as the server then answers), and from it:

    - records the request in this worker's metrics tally under its route template, method and
      status (unless `metrics` is False, which only scripts/bench uses, to say what they cost);
    - writes `METHOD /path STATUS 0.42ms request_id=ID`, or with `json_lines` a record with those
      fields for the JSON formatter, when "app.access" logs at INFO (and `access_log` is True).

    A request the edge answered instead (app/server/edge_answers.py) is logged and counted by the
    edge, not here.
    """

    def __init__(
        self, app: ASGIApp, json_lines: bool = False, access_log: bool = True, metrics: bool = True
    ) -> None:
        self.app = app
        self.json_lines = json_lines
        self.access_log = access_log
        self.metrics = metrics
        set_json_lines(json_lines)  # the edge's lines (log_access) follow the app's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logged = self.access_log and access_logger.isEnabledFor(logging.INFO)
        tally = telemetry.TALLY if self.metrics else None
        if not logged and tally is None:
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

        if tally is not None:
            tally.started()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            sent = sent_status(scope, status)
            if sent is None:  # the edge answered it, and logged and counted that answer
                if tally is not None:
                    tally.abandoned()
            else:
                seconds = time.perf_counter() - start
                method = scope["method"]
                route = route_template(scope, root_path)
                if tally is not None:
                    tally.finished(route, method, sent, seconds)
                if logged:
                    log_access(
                        method,
                        _path(scope),
                        sent,
                        seconds * 1000.0,
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
