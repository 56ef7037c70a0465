"""Request metrics for Prometheus: count, duration and in-flight requests
(app/observability/prometheus.py)."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import prometheus as telemetry
from app.observability.answered import route_template, sent_status


class RequestMetrics:
    """Pure ASGI middleware recording each HTTP request under its route template, method and
    status once it has been answered (or has failed: 500, as the server then answers), in this
    worker's tally (app/observability/prometheus.py), which writes it to the shared values soon
    after. An error
    answer is counted under its type too. The status is the one the client got
    (app/observability/answered.py): 499 if it left first; one the edge answered is the edge's to
    count."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tally = telemetry.TALLY
        tally.started()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            sent = sent_status(scope, status)
            if sent is None:  # the edge answered it, and counted that answer
                tally.abandoned()
            else:
                route = route_template(scope, root_path)
                tally.finished(route, scope["method"], sent, time.perf_counter() - start)
