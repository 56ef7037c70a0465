"""The request-id middleware: choose the request's id (app/core/request_id.py), expose it to
logs, and add it to the answer."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.request_id import HEADER, HEADER_KEY, accepted_or_new, set_request_id

__all__ = ["HEADER", "RequestId"]


class RequestId:
    """Pure ASGI middleware: choose the request's id, expose it to logs, add it to the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == HEADER_KEY:
                given = value
                break
        request_id = accepted_or_new(given)
        set_request_id(request_id, time.time_ns())
        header = (HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
