"""uvicorn's httptools protocol with the limits it lacks: deadlines, header limits, connection cap.

uvicorn waits forever for a request's headers and body (its issue #157), and with httptools has no
limit on the header block: a client trickling bytes holds a connection, and one sending a 32 MiB
header is buffered whole (httptools concatenates each header value as it arrives). This protocol
keeps uvicorn's parser, request cycle and keep-alive handling, and adds per connection:

- HEADER_TIMEOUT: the header block must be complete within it, counted from the connection's
  opening (first request) or from the request's first byte (later ones on a keep-alive connection,
  whose idle time uvicorn's keep-alive timeout bounds). A connection that has sent nothing is then
  closed; one part-way through its headers is answered 408.
- BODY_TIMEOUT: the whole request, body included, must have arrived within it of the same start.
  Answered 408 if no answer has begun (the app then sees a disconnect), else closed.
- MAX_HEADER_BYTES: bytes of the request line plus header fields. The parser is never fed more:
  a read that would pass the limit is cut there, and if the headers did not end within it the
  request is answered 431 (414 when nearly all of it is the URL).
- MAX_HEADER_COUNT: header fields per request, answered 431. Counted once the head has ended
  (or been cut at MAX_HEADER_BYTES, which bounds what a count can reach), not in a callback per
  field, which cost about 1,000 instructions a field (valgrind).
- MAX_CONNECTIONS: open connections in this worker. One more is answered 503 with Retry-After
  at once, without waiting for its request.
- Parser errors (a malformed request line or header): 400, where uvicorn answers in plain text.

Every answer here is the service's JSON error shape with `Connection: close`, or, when the
request's target (as far as it arrived) is under the EdgeConfig's `protocol_prefix` (/v2), the
Open Inference Protocol's `{"error": ...}` with the same message, as the app answers there
(app/middleware/v2_error_shape.py). Each carries an X-Request-ID, as the app's answers do: the
client's when its headers arrived with a sane one, else a new one; the log line names it. The
connection then lingers: it stops sending, reads and discards what the client still sends for up to
LINGER_SECONDS, and closes. Closing at once with unread data would make the kernel reset the
connection, and the client could lose the answer. Answers are never written over a response in
progress (pipelining): that response then closes the connection.

The deadlines cost no timer per request: each connection keeps one timer, armed for the earliest
deadline it may need, which re-arms itself when it fires early. A request only stores a number.
"""

import asyncio
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import httptools
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.core.errors import (
    JSON_MEDIA_TYPE,
    ErrorItem,
    error_body,
    error_message,
    protocol_error_body,
    under_prefix,
)
from app.core.request_id import accepted_or_new
from app.observability.answered import client_left
from app.server.edge_answers import edge_answered

logger = logging.getLogger("app.edge")

LINGER_SECONDS: Final = 2.0
RETRY_AFTER_SECONDS: Final = 1
# A head whose bytes are all URL but for this many (method, spaces, "HTTP/1.1\r\n") is a long URL.
REQUEST_LINE_OVERHEAD: Final = 32
_NO_LIMIT: Final = sys.maxsize

# Where a connection is, for its deadline.
_FRESH: Final = 0  # opened, no byte of a request yet
_HEAD: Final = 1  # a request's headers are arriving
_BODY: Final = 2  # its body is arriving
_NONE: Final = 3  # nothing to wait for: the app is answering, or the connection is idle


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The limits one connection is held to (the settings of the same names)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    max_connections: int = 1000


class EdgeConfig(Config):
    """A uvicorn Config carrying the EdgeLimits to its protocol (pickled with it to workers), and
    the path prefix whose refusals take the `{"error": ...}` shape (None: none do)."""

    def __init__(
        self, app: Any, *, limits: EdgeLimits, protocol_prefix: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.edge_limits = limits
        self.protocol_prefix = protocol_prefix


class RefusedError(Exception):
    """Raised in a parser callback to refuse the request with this answer."""

    def __init__(self, status: int, item: ErrorItem) -> None:
        super().__init__(item.type)
        self.status = status
        self.item = item


def header_too_large(limit: int) -> RefusedError:
    msg = f"The request line and headers must be at most {limit} bytes (MAX_HEADER_BYTES)"
    return RefusedError(431, ErrorItem(loc=["header"], msg=msg, type="header_too_large"))


def url_too_long(limit: int) -> RefusedError:
    msg = f"The URL must fit in {limit} bytes with the headers (MAX_HEADER_BYTES)"
    return RefusedError(414, ErrorItem(loc=["url"], msg=msg, type="url_too_long"))


def too_many_headers(limit: int) -> RefusedError:
    msg = f"A request may have at most {limit} header fields (MAX_HEADER_COUNT)"
    return RefusedError(431, ErrorItem(loc=["header"], msg=msg, type="too_many_headers"))


def header_timeout(seconds: float) -> RefusedError:
    msg = f"The request headers must arrive within {seconds:g} s (HEADER_TIMEOUT_SECONDS)"
    return RefusedError(408, ErrorItem(loc=["header"], msg=msg, type="header_timeout"))


def body_timeout(seconds: float) -> RefusedError:
    msg = f"The whole request must arrive within {seconds:g} s (BODY_TIMEOUT_SECONDS)"
    return RefusedError(408, ErrorItem(loc=["body"], msg=msg, type="body_timeout"))


def too_many_connections(limit: int) -> RefusedError:
    msg = f"This server has its {limit} connections open (MAX_CONNECTIONS); retry later"
    return RefusedError(503, ErrorItem(loc=["server"], msg=msg, type="too_many_connections"))


# Where a parser error lies, from llhttp's reason (a fixed phrase, never the input).
_REASON_PLACES: Final = (
    (("chunk",), ["body"], "invalid_body"),
    (("header", "content-length", "transfer-encoding"), ["header"], "invalid_header"),
    (("version", "expected http/", "crlf", "method"), ["request_line"], "invalid_request_line"),
)


def malformed(exc: httptools.HttpParserError) -> RefusedError:
    """400 for what the parser refused, with llhttp's reason and where it lies."""
    cause = exc.__context__
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        loc, kind, reason = ["method"], "invalid_method", "not a valid HTTP method"
    elif isinstance(exc, httptools.HttpParserInvalidURLError) or isinstance(
        cause, httptools.HttpParserInvalidURLError | UnicodeError
    ):
        loc, kind, reason = ["url"], "invalid_url", "not a valid request target"
    else:
        reason = str(exc).strip() or "malformed request"
        lower = reason.lower()
        loc, kind = ["request"], "malformed_request"
        for words, where, what in _REASON_PLACES:
            if any(word in lower for word in words):
                loc, kind = list(where), what
                break
    item = ErrorItem(loc=list(loc), msg=f"Malformed HTTP request: {reason}", type=kind)
    return RefusedError(400, item)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol held to EdgeLimits (from an EdgeConfig; the defaults otherwise)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = config.edge_limits if isinstance(config, EdgeConfig) else EdgeLimits()
        self.limits = limits
        self.protocol_prefix = config.protocol_prefix if isinstance(config, EdgeConfig) else None
        self.head_room = limits.max_header_bytes  # bytes the current head may still take
        self.stage = _FRESH
        self.started = 0.0  # when the current request began (its deadlines count from it)
        self.deadline = math.inf
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.lingering = False

    # -- connection events -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.started = self.loop.time()
        if len(self.connections) > self.limits.max_connections:
            self.refuse(too_many_connections(self.limits.max_connections))
            return
        self.wait_until(self.started + self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            client_left(
                self.cycle.scope
            )  # logged and counted as 499 (app/observability/answered.py)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # discarded: the answer is sent, the connection is closing
        self._unset_keepalive_if_required()
        if len(data) > self.head_room:
            self.feed_head_past_limit(data)
            return
        self.head_room -= len(data)
        self.feed(data)

    def feed_head_past_limit(self, data: bytes) -> None:
        """Feed the parser no more of the head than the limit; the rest only if it ended."""
        room = self.head_room
        self.head_room = 0
        if room and not self.feed(data[:room]):
            return
        if self.stage in (_FRESH, _HEAD):  # the headers did not end within the limit
            if len(self.headers) > self.limits.max_header_count:
                self.refuse(too_many_headers(self.limits.max_header_count))
                return
            limit = self.limits.max_header_bytes
            url = len(self.url) if self.stage == _HEAD else 0
            long_url = url + REQUEST_LINE_OVERHEAD >= limit
            self.refuse(url_too_long(limit) if long_url else header_too_large(limit))
            return
        self.data_received(data[room:])  # the body, or a next request's head

    def feed(self, data: bytes) -> bool:
        """Parse `data` as uvicorn does; answer a refusal or a parser error. True if it parsed."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self.refuse(cause if isinstance(cause, RefusedError) else malformed(exc))
            return False
        return True

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.stage != _FRESH:  # a first request's deadline counts from the connection
            self.started = self.loop.time()
            self.wait_until(self.started + self.limits.header_timeout)
        self.stage = _HEAD

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_header_count:
            raise too_many_headers(self.limits.max_header_count)
        self.head_room = _NO_LIMIT
        self.stage = _BODY
        self.wait_until(self.started + self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.head_room = self.limits.max_header_bytes
        self.stage = _NONE
        self.deadline = math.inf
        super().on_message_complete()

    # -- deadlines -----------------------------------------------------------------------------
    def wait_until(self, deadline: float) -> None:
        self.deadline = deadline
        if deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self.on_timer)
            self.timer_at = deadline

    def on_timer(self) -> None:
        self.timer = None
        self.timer_at = math.inf
        if self.lingering or self.transport.is_closing() or self.stage == _NONE:
            return
        if self.loop.time() < self.deadline:  # a later request moved the deadline on
            self.wait_until(self.deadline)
            return
        if self.stage == _FRESH:
            logger.debug("closed a connection that sent no request in time")
            self.transport.close()
        elif self.stage == _HEAD:
            self.refuse(header_timeout(self.limits.header_timeout))
        elif self.cycle is not None and self.cycle.response_started:
            logger.info("closed a connection whose request body did not arrive in time")
            self.transport.close()  # answered already, or answering: nothing more can be said
        else:
            self.refuse(body_timeout(self.limits.body_timeout))

    # -- answers -------------------------------------------------------------------------------
    def refuse(self, refusal: RefusedError) -> None:
        """Answer `refusal` and close, unless a response is in progress: it closes instead."""
        stage = self.stage
        self.lingering = True
        self.stage = _NONE
        self.flow.resume_reading()  # keep reading, to discard
        request_id = self.refusal_request_id(stage)
        logger.info("%d %s request_id=%s", refusal.status, refusal.item.type, request_id)
        cycle = self.cycle
        app_scope = None
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            if stage == _BODY and not cycle.response_started:
                # This request's body will never be complete: the app, waiting for it, sees a
                # disconnect and its answer is dropped; the refusal is the answer.
                app_scope = cycle.scope
                cycle.disconnected = True
                cycle.message_event.set()
            else:
                cycle.keep_alive = False  # an answer is under way: it closes the connection
                return
        # The method and path only of a head that was whole and within the limits: what a
        # refusal cut short is the client's input, never logged.
        method, target = (self.scope.get("method"), self.url) if stage == _BODY else (None, None)
        edge_answered(refusal.status, refusal.item.type, method, target, request_id, app_scope)
        extra = (
            [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if refusal.status == 503 else []
        )
        in_protocol = self.in_protocol_prefix(stage)
        answer = self.answer(refusal.status, [refusal.item], extra, request_id, in_protocol)
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then our end of stream
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def refusal_request_id(self, stage: int) -> str:
        """The client's X-Request-ID if its headers arrived with a sane one, else a new id."""
        given = None
        if stage == _BODY:  # the head is complete; before, a header may be cut short
            for name, value in self.headers:
                if name == b"x-request-id":
                    given = value
                    break
        return accepted_or_new(given)

    def in_protocol_prefix(self, stage: int) -> bool:
        """Whether the request's target, as far as it arrived, is under `protocol_prefix`."""
        prefix = self.protocol_prefix
        if prefix is None or stage not in (_HEAD, _BODY):
            return False
        url: bytes = getattr(self, "url", b"")
        return under_prefix(url.split(b"?", 1)[0].decode("latin-1"), prefix, self.root_path)

    def answer(
        self,
        status: int,
        items: Sequence[ErrorItem],
        extra: list[tuple[bytes, bytes]],
        request_id: str,
        in_protocol: bool,
    ) -> bytes:
        body = protocol_error_body(error_message(items)) if in_protocol else error_body(items)
        headers = [
            *self.server_state.default_headers,
            (b"content-type", JSON_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", request_id.encode("ascii")),
            *extra,
        ]
        lines = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in headers)]
        return b"".join([*lines, b"\r\n", body])
