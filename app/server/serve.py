"""A uvicorn server that drains its connections on shutdown, so no accepted request is lost.

On SIGTERM uvicorn stops accepting, then at once closes every keep-alive connection whose last
answer is complete. Its client may have just sent the next request there: that request is
dropped unread and the client sees a reset, not knowing whether it was served. DrainingServer
stops accepting too, then keeps serving the connections it has for up to `drain_seconds`,
answering every request with `Connection: close`, so each client learns from an answer that its
connection ends. The drain ends as soon as every connection has closed; those still open then
(idle all along, or in a request that outlasts the drain) go through uvicorn's own shutdown.

The stop is bounded: after the drain, connections whose answers wait unread in the write buffer
are aborted (nothing more will reach them), and uvicorn's own shutdown waits at most
STOP_GRACE_SECONDS for the requests still running before it cancels them. SIGTERM therefore ends
a worker within about `drain_seconds + STOP_GRACE_SECONDS`, whatever its clients do.

The event loop's reports of a socket it could not accept for lack of resources (EMFILE: no file
descriptor left) are logged once per RESOURCE_LOG_SECONDS with their count, not once each.

`serve(config, drain_seconds)` does what uvicorn.run does with a built Config, for one worker or
several, with a DrainingServer in each worker. `python -m app` runs it; a bare
`uvicorn --factory app.main:create_app` does not drain.
"""

import asyncio
import contextlib
import errno
import functools
import logging
import math
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from app.observability.log_writer import background_stderr
from app.server.memory import fix_malloc_thresholds
from app.server.process_guard import exit_with_parent, forget_process

logger = logging.getLogger("uvicorn.error")

DRAIN_POLL_SECONDS: Final = 0.05
STOP_GRACE_SECONDS: Final = 5
RESOURCE_LOG_SECONDS: Final = 10.0
RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Set (True) in the scope of every request served during the drain: /health/ready answers 503.
DRAINING: Final = "malignancy_predictor.draining"


class CloseWhenDraining:
    """Pure ASGI wrapper: once `draining` is set, every HTTP response says `Connection: close`.

    uvicorn (httptools and h11 alike) closes a connection after a response that carries this
    header. Until then the wrapper costs one attribute check a request: /predict is benchmarked.
    A request already running when the drain begins is answered as before; the next request on
    its connection is the one told to close. Requests during the drain carry DRAINING in their
    scope, so that the readiness probe can fail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.draining = False

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: handing back the app's own saves a coroutine per request.
        if self.draining and scope["type"] == "http":
            send = _closing(send)
            scope = {**scope, DRAINING: True}
        return self.app(scope, receive, send)


def _closing(send: Send) -> Send:
    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() != b"connection"
            ]
            headers.append((b"connection", b"close"))
            message = {**message, "headers": headers}
        await send(message)

    return send_closing


class DrainingServer(Server):
    """uvicorn's Server, draining connections for up to `drain_seconds` before its shutdown.

    A drain of 0 is uvicorn's own behaviour, and the app is then not wrapped at all.
    """

    def __init__(self, config: Config, drain_seconds: float) -> None:
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = STOP_GRACE_SECONDS
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.gate: CloseWhenDraining | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(ResourceErrorLog(loop.time).handle)
        fix_malloc_thresholds()  # in each worker: see app/server/memory.py
        # Wrapped here rather than in create_app because the wrapper belongs to this server's
        # shutdown, and serve() is what each worker process runs. Every connection takes its app
        # from the config when it opens, so this must happen before the first one.
        if self.drain_seconds > 0:
            if not self.config.loaded:
                self.config.load()
            self.gate = CloseWhenDraining(self.config.loaded_app)
            self.config.loaded_app = self.gate
        with background_stderr():  # a stalled log reader must not stall requests
            await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gate is not None and not self.force_exit:
            await self.drain(self.gate, sockets)
        self.abort_unread()
        await super().shutdown(sockets)

    def abort_unread(self) -> None:
        """Abort the connections whose answers wait unread: closing would wait for the client."""
        unread = [
            connection
            for connection in self.server_state.connections
            if connection.transport is not None and connection.transport.get_write_buffer_size()
        ]
        for connection in unread:
            connection.transport.abort()
        if unread:
            logger.info("Aborted %d connection(s) whose answers were not read", len(unread))

    async def drain(self, gate: CloseWhenDraining, sockets: list[socket.socket] | None) -> None:
        """Stop accepting, then serve with `Connection: close` until no connection is left or
        the drain time is up (or a second Ctrl+C forces the exit)."""
        # As uvicorn's shutdown does first; doing it again there is harmless.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        gate.draining = True
        connections = self.server_state.connections
        logger.info(
            "Draining %d connection(s) for up to %g s", len(connections), self.drain_seconds
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        while connections and not self.force_exit:
            left = deadline - loop.time()
            if left <= 0:
                logger.info("%d connection(s) still open after the drain", len(connections))
                return
            await asyncio.sleep(min(DRAIN_POLL_SECONDS, left))


class ResourceErrorLog:
    """An event loop exception handler that logs running out of file descriptors (or socket
    buffers) once per RESOURCE_LOG_SECONDS with a count, and anything else as asyncio does."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.count = 0
        self.logged_at = -math.inf

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not isinstance(exc, OSError) or exc.errno not in RESOURCE_ERRNOS:
            loop.default_exception_handler(context)
            return
        self.count += 1
        now = self.clock()
        if now - self.logged_at >= RESOURCE_LOG_SECONDS:
            logger.error(
                "%s (%d time(s) since the last report, at most one every %g s): %s",
                context.get("message", "out of a system resource"),
                self.count,
                RESOURCE_LOG_SECONDS,
                exc.strerror,
            )
            self.count = 0
            self.logged_at = now


class DrainingProcess(multiprocess.Process):
    """A uvicorn worker process that serves with a DrainingServer."""

    def __init__(self, config: Config, sockets: list[socket.socket], drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds  # set first: the worker is pickled with it
        self.supervisor_pid = os.getpid()
        super().__init__(config, sockets)

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        exit_with_parent(self.supervisor_pid)  # in the worker: no orphan if the supervisor dies
        super().target(sockets)

    def join(self) -> None:
        super().join()
        if self.pid is not None:  # dead now, however it ended: its live gauges go
            forget_process(self.pid)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = DrainingServer(self.config, self.drain_seconds)
        return self._server


class DrainingMultiprocess(multiprocess.Multiprocess):
    """uvicorn's worker supervisor, with a DrainingServer in each worker."""

    def __init__(self, config: Config, sockets: list[socket.socket], drain_seconds: float) -> None:
        super().__init__(config, sockets)
        self.drain_seconds = drain_seconds

    def run(self) -> None:
        # Multiprocess starts (and restarts) every worker with its module's Process class, whose
        # worker runs a plain Server, and has no hook for another: the class is swapped for the
        # supervisor's run. tests/unit/test_framework_contract.py fails if an upgrade of uvicorn
        # stops building workers from that name.
        original = multiprocess.Process
        worker = functools.partial(DrainingProcess, drain_seconds=self.drain_seconds)
        multiprocess.Process = worker  # type: ignore[misc,assignment]
        try:
            super().run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]

    def terminate_all(self) -> None:
        # This process's copy of the listening socket would keep it listening while the workers
        # drain, and the connections the kernel queued meanwhile would be reset when this
        # process exits. Once the workers close theirs too, new connections are refused.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


class EarlyStop:
    """SIGTERM from the moment this is made until serve() hands it on: a stop sent while the
    service starts (the artifact read, the metrics server started) is kept, and honoured once
    the server runs, instead of killing the process (status 143)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum: int, frame: object) -> None:
        self.requested = True


def serve(config: Config, drain_seconds: float, early: EarlyStop) -> int:
    """Serve as uvicorn.run(...) would with this Config, draining on shutdown; the exit status
    (uvicorn's STARTUP_FAILURE if a single worker never started). A stop `early` took is
    honoured as soon as the server has started."""
    if config.workers > 1:
        sock = config.bind_socket()
        supervisor = DrainingMultiprocess(config, [sock], drain_seconds)  # its handlers now
        if early.requested:  # before its handlers: the early one took it
            supervisor.signal_queue.append(signal.SIGTERM)  # what its own handler would do
        with contextlib.suppress(KeyboardInterrupt):
            supervisor.run()
        return 0
    server = DrainingServer(config, drain_seconds)
    # Until uvicorn installs its own handlers (after the app is built) a SIGTERM would be lost:
    # this one asks the server to stop as soon as it has started. After its graceful shutdown
    # uvicorn raises the signal that stopped it again, restoring this handler: with Python's
    # default the process would then die of it (status 143), and `make serve` would report a
    # normal stop as an error; here it ends normally (status 0).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _stop(server))
    if early.requested:  # before this handler: the early one took it
        _stop(server)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else STARTUP_FAILURE


def _stop(server: DrainingServer) -> None:
    server.should_exit = True  # uvicorn checks it after its startup, and in its main loop
