"""uvicorn's httptools protocol with the limits it lacks: deadlines, header limits, connection cap,
answers kept in order, and clients that do not read cut off.

uvicorn waits forever for a request's headers and body (its issue #157), and with httptools has no
limit on the header block: a client trickling bytes holds a connection, and one sending a 32 MiB
header is buffered whole (httptools concatenates each header value as it arrives). Nor does it
bound what it writes to a client that does not read. This protocol keeps uvicorn's parser,
request cycle and keep-alive handling, and adds per connection:

- HEADER_TIMEOUT: the header block must be complete within it, counted from the connection's
  opening (first request) or from the request's first byte (later ones on a keep-alive connection,
  whose idle time uvicorn's keep-alive timeout bounds). A connection that has sent nothing is then
  closed; one part-way through its headers is answered 408.
- BODY_TIMEOUT: the whole request, body included, must have arrived within it of the same start.
  Answered 408 if no answer has begun (the app then sees a disconnect), else closed.
  Neither deadline runs while the server itself has stopped reading (uvicorn's flow control:
  a pipelined request waiting for the one before it, a body the app has not taken yet, answers
  the client has not read): the time paused is added to the deadline.
- SEND_TIMEOUT: answers queued for a client that reads none of them for this long (the write
  buffer did not shrink) end the connection (aborted: nothing more can be written). While the
  write buffer is above uvicorn's high-water mark, the next pipelined request is neither read
  nor started: a connection holds at most one answer beyond the mark.
- MAX_HEADER_BYTES: bytes of the request line plus header fields, counted per request: each
  complete head from its parts (method, URL, fields; whitespace before a value aside), and a
  head still arriving by the bytes it has taken, so that the parser is never fed more than the
  limit of one head (httptools buffers a field whole), give or take one read when the head began
  behind other requests in it. 431 past it (414 when nearly all of it is the URL).
- MAX_HEADER_COUNT: header fields per request, answered 431.
- MAX_CONNECTIONS: open connections in this worker. One more is answered 503 with Retry-After
  at once, without waiting for its request.
- HTTP/1.1 without exactly one Host, or with two Host fields in any version: 400. A transfer
  coding other than a lone `chunked`: 501 when `chunked` is last (a coding this service does
  not implement), else 400 (RFC 9112 section 6.3: the length cannot be known).
- Whitespace after a header value is not part of it (RFC 9110 section 5.5); llhttp keeps it.
- `Expect: 100-continue` answered before the app asked for the body (413, 401): the connection
  closes after that answer, since the client may or may not send the body.
- A client that half-closes after its requests still gets their answers.
- Parser errors (a malformed request line or header): 400, where uvicorn answers in plain text.

Every answer here is the service's JSON error shape with `Connection: close`, or, when the
request's target (as far as it arrived, origin- or absolute-form, with or without the
EdgeConfig's `mount_path`) is under its `protocol_prefix` (/v2), the Open Inference Protocol's
`{"error": ...}` with the same message, as the app answers there (app/core/errors.py).
Each carries an X-Request-ID, as the app's answers do: the client's when its headers arrived with
a sane one, else a new one; the log line names it. A refusal is written after every answer to
the requests pipelined before it, never ahead of them. The connection then lingers: it stops
sending, reads and discards what the client still sends for up to LINGER_SECONDS, and closes.
Closing at once with unread data would make the kernel reset the connection, and the client
could lose the answer.

The deadlines cost no timer per request: each connection keeps one timer, armed for the earliest
deadline it may need, which re-arms itself when it fires early. A request only stores a number.
The send deadline has a timer of its own, armed only while answers wait in the write buffer.
"""

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import httptools
from uvicorn import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
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
HEAD_END: Final = b"\r\n\r\n"
# What a head holds besides its method, URL and fields: two spaces, "HTTP/1.1" and the line
# ends; each field adds ": " and a line end.
HEAD_OVERHEAD: Final = 2 + 8 + 2 + 2
FIELD_OVERHEAD: Final = 4
_OWS: Final = (b" ", b"\t")
METHOD_ROOM: Final = 32  # more than any method's length

# Where a connection is, for its deadline.
_FRESH: Final = 0  # opened, no byte of a request yet
_HEAD: Final = 1  # a request's headers are arriving
_BODY: Final = 2  # its body is arriving
_NONE: Final = 3  # nothing to wait for: the app is answering, or the connection is idle

# What became of a request refused while its body arrived (drop_request).
_DROPPED: Final = 0
_QUEUED: Final = 1
_ANSWERING: Final = 2


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The limits one connection is held to (the settings of the same names)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    max_connections: int = 1000
    send_timeout: float = 30.0


class EdgeConfig(Config):
    """A uvicorn Config carrying the EdgeLimits to its protocol (pickled with it to workers), the
    path prefix whose refusals take the `{"error": ...}` shape (None: none do), and the prefix
    the app is mounted under (ROOT_PATH; app/middleware/root_path.py), which a target may carry."""

    def __init__(
        self,
        app: Any,
        *,
        limits: EdgeLimits,
        protocol_prefix: str | None = None,
        mount_path: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.edge_limits = limits
        self.protocol_prefix = protocol_prefix
        self.mount_path = mount_path


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


def bad_host(count: int) -> RefusedError:
    problem = "is missing" if count == 0 else "is repeated"
    msg = f"The Host header {problem}: an HTTP/1.1 request has exactly one (RFC 9112 3.2)"
    return RefusedError(400, ErrorItem(loc=["header", "Host"], msg=msg, type="invalid_host"))


def bad_transfer_coding(codings: Sequence[bytes]) -> RefusedError:
    """501 for a coding this service lacks before a final chunked; 400 if chunked is not last
    or is applied twice (RFC 9112 6.1, 6.3: the body's length cannot be known)."""
    loc = ["header", "Transfer-Encoding"]
    if codings and codings[-1] == b"chunked" and codings.count(b"chunked") == 1:
        msg = "Only the chunked transfer coding is implemented; send the body without others"
        return RefusedError(501, ErrorItem(loc=loc, msg=msg, type="unsupported_transfer_coding"))
    msg = "Transfer-Encoding: chunked must be the last transfer coding, once"
    # The loc llhttp's own refusal of such a header gets (malformed).
    return RefusedError(400, ErrorItem(loc=["header"], msg=msg, type="invalid_header"))


def target_path(url: bytes, mount_path: str) -> str:
    """The path of a request target (origin- or absolute-form), without `mount_path`."""
    if not url.startswith(b"/"):
        scheme, sep, rest = url.partition(b"://")
        if sep and scheme.lower() in (b"http", b"https"):
            slash = rest.find(b"/")
            url = rest[slash:] if slash >= 0 else b"/"
    path = url.split(b"?", 1)[0].decode("latin-1")
    if mount_path and (path == mount_path or path.startswith(mount_path + "/")):
        path = path[len(mount_path) :] or "/"
    return path


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


class EdgeFlow(FlowControl):
    """uvicorn's flow control, telling the protocol when the server stops and resumes reading
    (its deadlines then stop and resume)."""

    def __init__(self, transport: asyncio.Transport, protocol: "GuardedHttpToolsProtocol") -> None:
        super().__init__(transport)
        self.protocol = protocol

    # FlowControl's own, plus the call; no super(): resume_reading runs on every request.
    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.protocol.reading_paused()
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.protocol.reading_resumed()
            self._transport.resume_reading()


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
        edge = config if isinstance(config, EdgeConfig) else None
        limits = edge.edge_limits if edge is not None else EdgeLimits()
        self.limits = limits
        self.protocol_prefix = edge.protocol_prefix if edge is not None else None
        self.mount_path = edge.mount_path if edge is not None else ""
        self.head_room = limits.max_header_bytes  # bytes the current head may still take
        self.head_tail = b""  # the last bytes of a head in progress: its end may straddle reads
        self.begun = 0  # requests begun on this connection
        self.measured_head = 0  # the request whose head the bytes read have shown in limit
        self.hosts = 0  # Host fields in the current head
        self.codings: list[bytes] | None = None  # its transfer codings, if it names any
        self.fields_size = 0  # bytes of its field names and values
        self.stage = _FRESH
        self.started = 0.0  # when the current request began (its deadlines count from it)
        self.deadline = math.inf
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.paused_at = 0.0
        self.lingering = False
        self.deferred: bytes | None = None  # a refusal waiting for earlier answers
        self.write_held = False  # the next request waits for the write buffer to drain
        self.close_after: RequestResponseCycle | None = None  # its answer ends the connection
        self.send_timer: asyncio.TimerHandle | None = None
        self.send_mark = 0  # the write buffer's size when the send deadline was armed

    # -- connection events -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = EdgeFlow(transport, self)
        self.started = self.loop.time()
        if len(self.connections) > self.limits.max_connections:
            self.refuse(too_many_connections(self.limits.max_connections))
            return
        self.wait_until(self.started + self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            client_left(self.cycle.scope)  # logged and counted as 499
        for timer in (self.timer, self.send_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.send_timer = None
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]
        """Keep the connection open for the answers still owed to a client that half-closed
        after its last request; close it otherwise (as uvicorn does)."""
        if self.deferred is not None:
            return True
        if self.lingering or self.stage in (_HEAD, _BODY) or not self.answers_pending():
            return None
        if self.cycle is not None:
            self.cycle.keep_alive = False  # no request can follow: its answer ends the connection
        return True

    # -- reading -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # discarded: the answer is sent, the connection is closing
        self._unset_keepalive_if_required()
        stage, begun = self.stage, self.begun
        at_head = stage != _BODY  # a head is in progress, or the next one starts here
        if at_head:
            if len(data) > self.head_room and not self.head_ends_within(data):
                self.feed_head_past_limit(data)
                return
            if stage != _HEAD:  # the next head starts here, so its bytes are counted
                self.measured_head = begun + 1  # check_head need not count its parts
        if not self.feed(data) or self.stage != _HEAD:
            return
        # A head goes on past this read: count what it has taken.
        if self.begun == begun or (self.begun == begun + 1 and stage in (_FRESH, _NONE)):
            self.head_room -= len(data)  # all of this read is that head's
        else:  # it began after other requests here: its URL and whole fields so far
            self.head_room = self.limits.max_header_bytes - self.head_size()
        self.head_tail = data[-3:]
        if self.head_room <= 0:
            self.head_overflow()

    def head_ends_within(self, data: bytes) -> bool:
        """Whether the head at the start of `data` ends within the bytes it may still take."""
        if data.find(HEAD_END, 0, self.head_room) >= 0:
            return True
        return self.stage == _HEAD and (self.head_tail + data[:3]).find(HEAD_END) >= 0

    def feed_head_past_limit(self, data: bytes) -> None:
        """Feed the parser no more of the head than the limit, then refuse it."""
        room = self.head_room
        self.head_room = 0
        if room and not self.feed(data[:room]):
            return
        self.head_overflow()

    def head_size(self) -> int:
        """The bytes of the current head's URL and whole fields (a field in progress aside)."""
        size = len(getattr(self, "url", b""))
        for name, value in self.headers or ():
            size += len(name) + len(value) + FIELD_OVERHEAD
        return size

    def head_overflow(self) -> None:
        """431 (or 414 for a URL) for a head that did not end within the limit."""
        if len(self.headers or ()) > self.limits.max_header_count:
            self.refuse(too_many_headers(self.limits.max_header_count))
            return
        limit = self.limits.max_header_bytes
        url = len(self.url) if self.stage == _HEAD else 0
        long_url = url + REQUEST_LINE_OVERHEAD >= limit
        self.refuse(url_too_long(limit) if long_url else header_too_large(limit))

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
        self.begun += 1
        self.hosts = 0
        self.codings = None
        self.fields_size = 0
        if self.stage != _FRESH:  # a first request's deadline counts from the connection
            self.started = self.loop.time()
            self.wait_until(self.started + self.limits.header_timeout)
        self.stage = _HEAD

    def on_headers_complete(self) -> None:
        self.check_head()
        self.head_room = self.limits.max_header_bytes
        self.head_tail = b""
        self.stage = _BODY
        self.wait_until(self.started + self.limits.body_timeout)
        earlier = self.cycle
        super().on_headers_complete()
        if self.expect_100_continue and self.cycle is not earlier:
            self.close_if_body_unasked(self.cycle)

    def on_header(self, name: bytes, value: bytes) -> None:
        """uvicorn's (which it replaces), and what check_head needs: Host and Transfer-Encoding
        noted, the size counted, whitespace after the value dropped (RFC 9110 5.5)."""
        name = name.lower()
        self.fields_size += len(name) + len(value)
        if value[-1:] in _OWS:
            value = value.rstrip(b" \t")
        if name == b"host":
            self.hosts += 1
        elif name == b"transfer-encoding":
            self.codings = [*(self.codings or []), *_codings(value)]
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def check_head(self) -> None:
        """Refuse a head with too many or too large fields, without one Host, or with a
        transfer coding but chunked."""
        if len(self.headers) > self.limits.max_header_count:
            raise too_many_headers(self.limits.max_header_count)
        if self.begun != self.measured_head:  # not counted by the bytes it took: by its parts
            self.check_head_size(self.fields_size)
        hosts = self.hosts
        if hosts != 1 and (hosts > 1 or self.parser.get_http_version() == "1.1"):
            raise bad_host(hosts)
        codings = self.codings
        if codings is not None and codings != [b"chunked"]:
            raise bad_transfer_coding(codings)

    def check_head_size(self, fields: int) -> None:
        """431 for a head whose method, URL and `fields` bytes of names and values (with their
        separators) pass MAX_HEADER_BYTES."""
        limit = self.limits.max_header_bytes
        size = HEAD_OVERHEAD + len(self.url) + FIELD_OVERHEAD * len(self.headers) + fields
        # The method's length is asked for only when it may matter.
        if size + METHOD_ROOM > limit and size + len(self.parser.get_method()) > limit:
            raise header_too_large(limit)

    def on_message_complete(self) -> None:
        self.head_room = self.limits.max_header_bytes
        self.stage = _NONE
        self.deadline = math.inf
        super().on_message_complete()

    # -- the app's answers ---------------------------------------------------------------------
    def answers_pending(self) -> bool:
        """Whether an answer to a request is still to be written (the last one read, or one
        pipelined before it)."""
        cycle = self.cycle
        busy = cycle is not None and not cycle.response_complete and not cycle.disconnected
        return busy or bool(self.pipeline)

    def on_response_complete(self) -> None:
        """uvicorn's, but the next pipelined request waits while the write buffer is above its
        high-water mark, and a refusal deferred behind earlier answers goes out after them.
        (Its common path inlined: it runs on every request.)"""
        self.server_state.total_requests += 1
        transport = self.transport
        if transport.is_closing():
            return
        self._unset_keepalive_if_required()
        if self.close_after is not None:
            self.close_after = None
            self.linger()
            return
        if transport.get_write_buffer_size():
            self.watch_send(restart=True)
            if self.flow.write_paused:
                self.write_held = True
                self.flow.pause_reading()
                return
        if self.deferred is not None or self.pipeline:
            self.advance()
            return
        self.flow.resume_reading()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def advance(self) -> None:
        """Start the next pipelined request, or the deferred refusal, or wait for a request."""
        if self.deferred is not None and not self.pipeline:
            answer, self.deferred = self.deferred, None
            self.send_refusal(answer)
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def pause_writing(self) -> None:
        super().pause_writing()
        self.watch_send(restart=False)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_held and not self.transport.is_closing():
            self.write_held = False
            self.advance()

    def close_if_body_unasked(self, cycle: RequestResponseCycle) -> None:
        """An answer begun before the app asked for the body (so before `100 Continue`) ends the
        connection: the client may send the body or not, and its next bytes mean nothing sure.
        uvicorn would close at once; the connection lingers instead (see `linger`)."""
        send = cycle.send

        async def send_then_close(message: Any) -> None:
            if message["type"] == "http.response.start":
                if cycle.waiting_for_100_continue and cycle.more_body:
                    cycle.keep_alive = False  # uvicorn writes `Connection: close`
                    self.close_after = cycle
            elif self.close_after is cycle and not message.get("more_body", False):
                cycle.keep_alive = True  # so that uvicorn does not close; on_response_complete
            await send(message)

        cycle.send = send_then_close  # type: ignore[method-assign]

    # -- the send deadline ---------------------------------------------------------------------
    def watch_send(self, *, restart: bool) -> None:
        """Arm the send deadline while answers wait in the write buffer (`restart`: counting
        from now, as after a new answer, else from when it was armed)."""
        size = self.transport.get_write_buffer_size()
        if not size or (self.send_timer is not None and not restart):
            return
        if self.send_timer is not None:
            self.send_timer.cancel()
        self.send_mark = size
        self.send_timer = self.loop.call_later(self.limits.send_timeout, self.on_send_timer)

    def on_send_timer(self) -> None:
        self.send_timer = None
        if self.parser is None:  # the connection is lost already
            return
        size = self.transport.get_write_buffer_size()
        if not size:
            return
        if size < self.send_mark:  # the client read some: a new period
            self.send_mark = size
            self.send_timer = self.loop.call_later(self.limits.send_timeout, self.on_send_timer)
            return
        logger.info(
            "closed a connection that read none of %d bytes of answers in %g s "
            "(SEND_TIMEOUT_SECONDS)",
            size,
            self.limits.send_timeout,
        )
        self.transport.abort()

    # -- deadlines -----------------------------------------------------------------------------
    def reading_paused(self) -> None:
        self.paused_at = self.loop.time()

    def reading_resumed(self) -> None:
        """The time reading was paused is not the client's: it moves the deadlines on."""
        paused = self.loop.time() - self.paused_at
        self.started += paused
        if self.deadline < math.inf:
            self.deadline += paused
            self.wait_until(self.deadline)

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
        if self.flow.read_paused:  # not the client's fault; reading_resumed re-arms
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

    # -- refusals ------------------------------------------------------------------------------
    def refuse(self, refusal: RefusedError) -> None:
        """Answer `refusal` and close, after the answers to earlier requests; if this request's
        own answer is under way, it closes the connection instead."""
        stage = self.stage
        self.lingering = True
        self.stage = _NONE
        self.flow.resume_reading()  # keep reading, to discard
        request_id = self.refusal_request_id(stage)
        logger.info("%d %s request_id=%s", refusal.status, refusal.item.type, request_id)
        queued = False
        app_scope = None
        if stage == _BODY:
            cycle = self.cycle
            fate = self.drop_request(cycle)
            if fate == _ANSWERING:
                return
            queued = fate == _QUEUED
            if fate == _DROPPED and cycle is not None and cycle.disconnected:
                app_scope = cycle.scope  # the app had started it: the refusal is its answer
        # The method and path only of a head that was whole and within the limits: what a
        # refusal cut short is the client's input, never logged.
        method, target = (self.scope.get("method"), self.url) if stage == _BODY else (None, None)
        edge_answered(refusal.status, refusal.item.type, method, target, request_id, app_scope)
        extra = (
            [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if refusal.status == 503 else []
        )
        in_protocol = self.in_protocol_prefix(stage)
        answer = self.answer(refusal.status, [refusal.item], extra, request_id, in_protocol)
        if queued or self.answers_pending():
            self.deferred = answer  # written by on_response_complete after the earlier answers
            return
        self.send_refusal(answer)

    def drop_request(self, cycle: RequestResponseCycle | None) -> int:
        """Take a refused request (its body incomplete) from the app: _QUEUED if it waited
        behind earlier ones (never started), _ANSWERING if its answer is under way already
        (which then closes the connection), else _DROPPED."""
        if cycle is None or cycle.response_complete or cycle.disconnected:
            return _DROPPED
        for queued in self.pipeline:
            if queued[0] is cycle:
                self.pipeline.remove(queued)
                return _QUEUED
        if not cycle.response_started:
            # The app, waiting for the body, sees a disconnect; its answer is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            return _DROPPED
        cycle.keep_alive = False
        return _ANSWERING

    def send_refusal(self, answer: bytes) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(answer)
        self.linger()

    def linger(self) -> None:
        """End the connection after what is written: our end of stream, then read and discard
        for up to LINGER_SECONDS and close."""
        self.lingering = True
        self.stage = _NONE
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then our end of stream
        self.watch_send(restart=True)
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
        return under_prefix(target_path(url, self.mount_path), prefix, self.root_path)

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


def _codings(value: bytes) -> list[bytes]:
    return [token.strip(b" \t").lower() for token in value.split(b",") if token.strip(b" \t")]
