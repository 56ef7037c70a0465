"""Refuse request bodies over MAX_BODY_BYTES with 413, without reading them into memory."""

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ApiError, error_response

_CONTENT_LENGTH: Final = b"content-length"


class BodyTooLargeError(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            ["body"],
            f"Request body must be at most {max_bytes} bytes (MAX_BODY_BYTES)",
            "body_too_large",
        )


class BodySizeLimit:
    """Pure ASGI middleware limiting the request body to `max_bytes`.

    A declared Content-Length over the limit is answered 413 before a byte of the body is read.
    A body without one (chunked transfer) is counted as it streams in and refused as soon as it
    passes the limit; the server discards whatever the client still sends. A body with a
    Content-Length within the limit needs no counting: the server never delivers more.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, [BodyTooLargeError(self.max_bytes).item()])
        await response(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            # Normally the app's HTTP error handler answers; this covers code that has none.
            if started:
                raise
            await self._refuse(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            try:
                return int(value)
            except ValueError:
                return None
    return None
