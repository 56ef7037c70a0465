"""Refuse request bodies over MAX_BODY_BYTES with 413, without reading them into memory; and
hold the bodies of all requests running at once to MAX_BUFFERED_BODY_BYTES, refusing one that
would pass it with 503 and Retry-After.

Paths may have limits of their own (`PathLimit`): the Open Inference Protocol's infer takes
larger bodies (V2_MAX_BODY_BYTES), and every /v2 path answers in that protocol's error shape.

The per-request limit alone bounds a worker's memory only by MAX_CONNECTIONS times the largest
body: forty concurrent 8 MiB bodies took a worker from 74 to 402 MB. A body's declared length
is taken from the budget before a byte of it is read and given back when its request has been
answered, since the app holds the body, and what it parsed from it, until then; a body without
a declared length (chunked) takes its bytes as they arrive. When the budget is empty again after
a burst that held half of it or more, `release` is called, for the worker to give back the
memory the burst left between blocks still in use (app/server/memory.py). Not after every large
body: a release and the page faults that follow it cost about 2 ms, which after each 1 MiB V2
binary infer (15,000 rows, one connection) took 0.66x the requests per second.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ApiError, error_response

_CONTENT_LENGTH: Final = b"content-length"
RETRY_AFTER_SECONDS: Final = "1"
Refusal = Callable[[int, str], Response]  # (max_bytes, setting name) -> the 413 answer


class BodyTooLargeError(ApiError):
    def __init__(self, max_bytes: int, setting: str = "MAX_BODY_BYTES") -> None:
        super().__init__(
            413,
            ["body"],
            f"Request body must be at most {max_bytes} bytes ({setting})",
            "body_too_large",
        )
        self.max_bytes = max_bytes
        self.setting = setting


class BodyBudgetError(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            503,
            ["server"],
            f"The server holds as many request bodies as it may at once ({max_bytes} bytes, "
            "MAX_BUFFERED_BODY_BYTES); retry in a moment",
            "body_budget_exhausted",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )


def _keep() -> object:
    return None


class BodyBudget:
    """The request body bytes this worker's running requests hold, at most `max_bytes`; once
    none are held after a burst that held half of them or more, `release()` is called."""

    def __init__(self, max_bytes: int, release: Callable[[], object] = _keep) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self.burst = 0  # the most held since the budget was last empty
        self.release = release
        self.release_after = max_bytes // 2

    def take(self, size: int) -> bool:
        """Add `size` bytes, if they fit; whether they did."""
        if self.held + size > self.max_bytes:
            return False
        self.held += size
        self.burst = max(self.burst, self.held)
        return True

    def give(self, size: int) -> None:
        self.held -= size
        if self.held:
            return
        if self.burst >= self.release_after:
            self.release()
        self.burst = 0


def _native_refusal(max_bytes: int, setting: str) -> Response:
    return error_response(413, [BodyTooLargeError(max_bytes, setting).item()])


@dataclass(frozen=True, slots=True)
class PathLimit:
    """The limit, and the answer over it, for paths (below the root path) that start with
    `prefix` and end with `suffix`."""

    prefix: str
    suffix: str
    max_bytes: int
    setting: str
    refuse: Refusal

    def matches(self, path: str) -> bool:
        return path.startswith(self.prefix) and path.endswith(self.suffix)


class BodySizeLimit:
    """Pure ASGI middleware limiting the request body to `max_bytes`, or to the first matching
    `path_limits` entry's.

    `release` is called when a burst of bodies is over (`BodyBudget`).

    A declared Content-Length over the limit is answered 413 before a byte of the body is read.
    A body without one (chunked transfer) is counted as it streams in and refused as soon as it
    passes the limit; the server discards whatever the client still sends. A body with a
    Content-Length within the limit needs no counting: the server never delivers more.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_limits: Sequence[PathLimit] = (),
        max_buffered_bytes: int | None = None,
        release: Callable[[], object] = _keep,
    ) -> None:
        self.app = app
        self.default = PathLimit("", "", max_bytes, "MAX_BODY_BYTES", _native_refusal)
        self.path_limits = tuple(path_limits)
        largest = max([max_bytes, *(limit.max_bytes for limit in self.path_limits)])
        budget = largest if max_buffered_bytes is None else max_buffered_bytes
        self.budget = BodyBudget(budget, release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is None:
            await self._counted(limit, scope, receive, send)
        elif declared > limit.max_bytes:
            await limit.refuse(limit.max_bytes, limit.setting)(scope, receive, send)
        elif not declared:
            await self.app(scope, receive, send)
        elif not self.budget.take(declared):
            await self._busy(scope, receive, send)
        else:
            try:
                await self.app(scope, receive, send)
            finally:
                self.budget.give(declared)

    async def _busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyBudgetError(self.budget.max_bytes)
        response = error_response(503, [error.item()], error.headers, scope=scope)
        await response(scope, receive, send)

    def _limit(self, scope: Scope) -> PathLimit:
        if not self.path_limits:
            return self.default
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for limit in self.path_limits:
            if limit.matches(path):
                return limit
        return self.default

    async def _counted(self, limit: PathLimit, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if received + size > limit.max_bytes:
                    raise BodyTooLargeError(limit.max_bytes, limit.setting)
                if not self.budget.take(size):
                    raise BodyBudgetError(self.budget.max_bytes)
                received += size
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
            await limit.refuse(limit.max_bytes, limit.setting)(scope, receive, send)
        except BodyBudgetError:
            if started:
                raise
            await self._busy(scope, receive, send)
        finally:
            self.budget.give(received)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            try:
                return int(value)
            except ValueError:
                return None
    return None
