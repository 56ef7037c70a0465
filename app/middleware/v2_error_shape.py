"""Error answers under a path prefix in another protocol's shape: for /v2, `{"error": ...}`.

The edge middleware inside this one (Content-Encoding, query strings) answer every path in the
service's own shape, `{"message": ..., "detail": [...]}`. On the Open Inference Protocol's
paths a client expects the protocol's, so this pure ASGI middleware rewrites such an answer
there: the same message, and 400 (the protocol's status for a bad request) for a 422. Other
answers, and every answer on other paths, pass through untouched; only an error answer on a
prefixed path is held until its body is complete.
"""

import json
from typing import Final

import pydantic_core
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REWRITTEN_STATUS: Final = {422: 400}


def under_prefix(path: str, prefix: str, root_path: str = "") -> bool:
    """Whether `path` (with `root_path` in front of it, or not) is `prefix` or below it."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path == prefix or path.startswith(prefix + "/")


def protocol_error_body(message: str) -> bytes:
    """The protocol's error answer: `{"error": message}`."""
    return pydantic_core.to_json({"error": message})


class ProtocolErrorShape:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def _applies(self, scope: Scope) -> bool:
        if scope["type"] != "http":
            return False
        return under_prefix(scope["path"], self.prefix, scope.get("root_path", ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                start, body = _rewritten(held, b"".join(chunks))
                await send(start)
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting_send)


def _rewritten(start: Message, body: bytes) -> tuple[Message, bytes]:
    """The protocol's answer for a native error answer; anything else unchanged."""
    try:
        native = json.loads(body)
    except ValueError:
        return start, body
    if not isinstance(native, dict) or "message" not in native or "error" in native:
        return start, body
    new_body = protocol_error_body(str(native["message"]))
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(new_body)).encode()))
    status = _REWRITTEN_STATUS.get(start["status"], start["status"])
    return {**start, "status": status, "headers": headers}, new_body
