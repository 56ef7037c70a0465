"""MAX_BUFFERED_BODY_BYTES in process: the bodies of the requests a worker runs at once are
held to a budget; one past it is answered 503 with Retry-After, in its path's error shape, and
every body's bytes are given back once its request has been answered, however it ended."""

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, Final

import pytest
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from app.core.config import MIB, Settings
from app.main import create_app
from app.middleware.body_limit import BodySizeLimit, PathLimit
from app.server.memory import release_free_memory

BUDGET: Final = 1000
V2_INFER: Final = "/v2/models/m/infer"


class HoldingApp:
    """Reads its whole body, then waits on `release` before it answers 200 (or raises)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.read: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        self.read.append(size)
        await self.release.wait()
        if scope["path"] == "/fails":
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _refuse_v2(max_bytes: int, setting: str) -> Any:
    raise AssertionError("no body here passes its limit")


def _middleware(app: HoldingApp) -> BodySizeLimit:
    v2 = PathLimit("/v2/models/", "/infer", 2 * BUDGET, "V2_MAX_BODY_BYTES", _refuse_v2)
    return BodySizeLimit(app, max_bytes=BUDGET, path_limits=[v2], max_buffered_bytes=BUDGET)


def _scope(path: str, size: int | None) -> Scope:
    headers = [] if size is None else [(b"content-length", str(size).encode())]
    return {"type": "http", "method": "POST", "path": path, "headers": headers, "root_path": ""}


async def _send_request(
    middleware: BodySizeLimit, path: str, size: int, declared: bool = True, chunk: int = 100
) -> list[Message]:
    """One request of `size` body bytes, in chunks of `chunk`; the messages sent back."""
    parts = [b"x" * min(chunk, size - i) for i in range(0, size, chunk)] or [b""]
    messages = iter(
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(_scope(path, size if declared else None), receive, send)
    return sent


def _status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def _json(sent: list[Message]) -> Any:
    return json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def _headers(sent: list[Message]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


Run = Callable[[BodySizeLimit, HoldingApp], Coroutine[Any, Any, None]]


def _run(test: Run) -> None:
    app = HoldingApp()
    asyncio.run(test(_middleware(app), app))


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize(("path", "shape"), [("/predict", "native"), (V2_INFER, "v2")])
def test_a_body_past_the_budget_is_refused_until_one_is_answered(
    declared: bool, path: str, shape: str
) -> None:
    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        first = asyncio.create_task(_send_request(middleware, "/predict", 600))
        await asyncio.sleep(0.01)  # read, and held
        assert middleware.budget.held == 600
        refused = await _send_request(middleware, path, 500, declared)
        assert _status(refused) == 503
        assert _headers(refused)[b"retry-after"] == b"1"
        body = _json(refused)
        if shape == "v2":
            assert "MAX_BUFFERED_BODY_BYTES" in body["error"]
        else:
            assert body["detail"][0]["type"] == "body_budget_exhausted"
            assert body["detail"][0]["loc"] == ["server"]
        assert middleware.budget.held == 600  # the refused body's bytes are not held
        app.release.set()
        assert _status(await first) == 200
        assert middleware.budget.held == 0
        assert _status(await _send_request(middleware, path, 500, declared)) == 200

    _run(test)


def test_a_declared_body_is_refused_before_a_byte_is_read() -> None:
    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        first = asyncio.create_task(_send_request(middleware, "/predict", 900))
        await asyncio.sleep(0.01)
        assert _status(await _send_request(middleware, "/predict", 101)) == 503
        assert app.read == [900]  # the refused request never reached the app
        app.release.set()
        await first

    _run(test)


@pytest.mark.parametrize("declared", [True, False])
def test_bodies_within_the_budget_run_together(declared: bool) -> None:
    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        sizes = [400, 300, 300]
        tasks = [
            asyncio.create_task(_send_request(middleware, "/predict", n, declared)) for n in sizes
        ]
        await asyncio.sleep(0.01)
        assert middleware.budget.held == sum(sizes)
        app.release.set()
        assert [_status(await t) for t in tasks] == [200, 200, 200]
        assert middleware.budget.held == 0

    _run(test)


@pytest.mark.parametrize("declared", [True, False])
def test_the_budget_is_given_back_when_the_app_fails(declared: bool) -> None:
    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        app.release.set()
        with pytest.raises(RuntimeError):
            await _send_request(middleware, "/fails", 700, declared)
        assert middleware.budget.held == 0

    _run(test)


def test_requests_without_a_body_are_never_refused() -> None:
    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        full = asyncio.create_task(_send_request(middleware, "/predict", BUDGET))
        await asyncio.sleep(0.01)
        bodiless = [
            asyncio.create_task(_send_request(middleware, "/health", 0, declared))
            for declared in (True, False)
        ]
        await asyncio.sleep(0.01)
        assert app.read == [BUDGET, 0, 0]  # all three running at once
        app.release.set()
        assert [_status(await t) for t in [full, *bodiless]] == [200, 200, 200]

    _run(test)


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize(
    ("bursts", "releases"),
    [
        pytest.param([[400], [400]], 0, id="small bodies one after another"),
        pytest.param([[500]], 1, id="one body of half the budget"),
        pytest.param([[300, 300]], 1, id="two bodies at once past half"),
        pytest.param([[300, 300], [200], [600, 100]], 2, id="two bursts and a small body"),
    ],
)
def test_memory_is_released_once_a_burst_of_bodies_is_over(
    declared: bool, bursts: list[list[int]], releases: int
) -> None:
    released: list[int] = []

    async def test(middleware: BodySizeLimit, app: HoldingApp) -> None:
        middleware.budget.release = lambda: released.append(middleware.budget.held)
        for sizes in bursts:
            earlier = len(released)
            app.release.clear()
            tasks = [
                asyncio.create_task(_send_request(middleware, "/predict", n, declared))
                for n in sizes
            ]
            await asyncio.sleep(0.01)
            assert len(released) == earlier  # never while a body is held
            app.release.set()
            assert [_status(await t) for t in tasks] == [200] * len(sizes)

    _run(test)
    assert released == [0] * releases


def test_the_service_gives_memory_back_after_a_burst() -> None:
    layers = create_app(Settings()).user_middleware
    (limit,) = [m for m in layers if m.cls is BodySizeLimit]  # type: ignore[comparison-overlap]
    assert limit.kwargs["release"] is release_free_memory


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 32 * MIB),
        ({"v2_max_body_bytes": 2 * MIB}, 8 * MIB),
        ({"max_body_bytes": 16 * MIB, "v2_max_body_bytes": 2 * MIB}, 64 * MIB),
        ({"max_buffered_body_bytes": 9 * MIB}, 9 * MIB),
    ],
)
def test_the_default_is_four_of_the_largest_bodies(env: dict[str, int], expected: int) -> None:
    assert Settings(**env).max_buffered_body_bytes == expected  # type: ignore[arg-type]


def test_a_budget_smaller_than_the_largest_body_stops_startup() -> None:
    with pytest.raises(ValidationError, match="the largest body allowed must fit"):
        Settings(max_buffered_body_bytes=MIB)
