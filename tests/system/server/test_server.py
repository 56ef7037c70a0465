"""The draining server: the ASGI wrapper's headers, and a drain seen on one real connection.

The wrapper must leave every message alone until the drain begins, then make each response say
`Connection: close`. The in-process servers (a tiny ASGI app on a loopback port, under both of
uvicorn's HTTP/1.1 parsers) show what that buys: a request sent on an idle keep-alive connection
after shutdown began is answered, where uvicorn alone (a drain of 0) drops it unread.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Final

import pytest
from starlette.types import Message, Receive, Scope, Send
from uvicorn import Config

from app.server.serve import CloseWhenDraining, DrainingServer
from tests.live_server import LOOPBACK, free_port

REQUEST: Final = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
TIMEOUT: Final = 10.0


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def sent_by(wrapper: CloseWhenDraining, scope: Scope) -> list[Message]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await wrapper(scope, receive, send)
    return messages


HTTP_SCOPE: Final[Scope] = {"type": "http", "method": "GET", "path": "/", "headers": []}


def test_wrapper_passes_everything_through_until_the_drain() -> None:
    wrapper = CloseWhenDraining(hello)
    plain = asyncio.run(sent_by(CloseWhenDraining(hello), HTTP_SCOPE))
    assert asyncio.run(sent_by(wrapper, HTTP_SCOPE)) == plain
    assert (b"connection", b"close") not in plain[0]["headers"]


def test_wrapper_asks_to_close_once_draining() -> None:
    wrapper = CloseWhenDraining(hello)
    wrapper.draining = True
    start, body = asyncio.run(sent_by(wrapper, HTTP_SCOPE))
    assert start["headers"] == [
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
        (b"connection", b"close"),
    ]
    assert body == {"type": "http.response.body", "body": b"hello"}


def test_wrapper_replaces_the_apps_own_connection_header() -> None:
    async def keep_alive(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"Connection", b"keep-alive"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    wrapper = CloseWhenDraining(keep_alive)
    wrapper.draining = True
    start, _ = asyncio.run(sent_by(wrapper, HTTP_SCOPE))
    assert start["headers"] == [(b"content-length", b"0"), (b"connection", b"close")]


def test_wrapper_leaves_other_scopes_alone() -> None:
    seen: list[Send] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(send)

    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {"type": "lifespan.shutdown"}

    wrapper = CloseWhenDraining(app)
    wrapper.draining = True

    async def lifespan() -> None:  # the wrapper returns an awaitable, not a coroutine
        await wrapper({"type": "lifespan"}, receive, send)

    asyncio.run(lifespan())
    assert seen == [send]


@contextlib.asynccontextmanager
async def running(drain_seconds: float, http: str) -> AsyncIterator[DrainingServer]:
    # log_config=None: leave this process's logging configuration alone.
    config = Config(
        hello, host=LOOPBACK, port=free_port(), lifespan="off", log_config=None, http=http
    )
    server = DrainingServer(config, drain_seconds)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server stopped before it started"
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send REQUEST, return the answer's head (up to the body)."""
    writer.write(REQUEST)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert await reader.readexactly(5) == b"hello"
    return head.lower()


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_request_after_shutdown_began_is_answered_and_the_drain_ends_early(http: str) -> None:
    async def scenario() -> float:
        async with running(drain_seconds=5.0, http=http) as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.config.port)
            assert b"connection: close" not in await ask(reader, writer)
            server.should_exit = True
            while server.gate is None or not server.gate.draining:
                await asyncio.sleep(0.01)
            began = time.monotonic()
            with pytest.raises(ConnectionRefusedError):  # no longer accepting
                await asyncio.open_connection(LOOPBACK, server.config.port)
            assert b"connection: close" in await ask(reader, writer)  # idle, yet served
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # then closed
            writer.close()
        return time.monotonic() - began

    # The one connection closed, so the server did not wait out the 5 s.
    assert asyncio.run(scenario()) < 2.5


def test_connection_idle_through_the_drain_is_closed_at_its_end() -> None:
    async def scenario() -> float:
        async with running(drain_seconds=0.3, http="httptools") as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.config.port)
            await ask(reader, writer)
            server.should_exit = True
            began = time.monotonic()
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            writer.close()
        return time.monotonic() - began

    assert asyncio.run(scenario()) >= 0.3


def test_without_a_drain_uvicorn_drops_a_request_on_an_idle_connection() -> None:
    """Why the drain exists: the same request as above, with SHUTDOWN_DRAIN_SECONDS=0."""

    async def scenario() -> None:
        async with running(drain_seconds=0, http="httptools") as server:
            assert server.gate is None  # not even wrapped
            reader, writer = await asyncio.open_connection(LOOPBACK, server.config.port)
            await ask(reader, writer)
            server.should_exit = True
            while server.server_state.connections:  # uvicorn closes the idle one at once
                await asyncio.sleep(0.01)
            with contextlib.suppress(ConnectionError):
                writer.write(REQUEST)
                await writer.drain()
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            writer.close()

    asyncio.run(scenario())
