"""The edge's pure rules, in process: request targets, transfer codings, resource-error logging."""

import errno
import logging
from typing import Any

import pytest

from app.server.edge import bad_transfer_coding, target_path
from app.server.serve import RESOURCE_LOG_SECONDS, ResourceErrorLog


@pytest.mark.parametrize(
    ("url", "mount", "path"),
    [
        (b"/v2/models/m", "", "/v2/models/m"),
        (b"/v2?x=1", "", "/v2"),
        (b"http://host/v2/models", "", "/v2/models"),
        (b"HTTPS://host:8443/ml/v2", "/ml", "/v2"),
        (b"http://host", "", "/"),
        (b"/ml/v2/health", "/ml", "/v2/health"),
        (b"/ml", "/ml", "/"),
        (b"/mlx/v2", "/ml", "/mlx/v2"),
        (b"ftp://host/v2", "", "ftp://host/v2"),  # not a path: under no prefix
        (b"*", "", "*"),
    ],
)
def test_target_path(url: bytes, mount: str, path: str) -> None:
    assert target_path(url, mount) == path


@pytest.mark.parametrize(
    ("codings", "status", "kind"),
    [
        ([b"gzip", b"chunked"], 501, "unsupported_transfer_coding"),
        ([b"foo", b"bar", b"chunked"], 501, "unsupported_transfer_coding"),
        ([b"chunked", b"gzip"], 400, "invalid_header"),
        ([b"chunked", b"chunked"], 400, "invalid_header"),
        ([b"gzip"], 400, "invalid_header"),
        ([], 400, "invalid_header"),
    ],
)
def test_transfer_codings(codings: list[bytes], status: int, kind: str) -> None:
    refusal = bad_transfer_coding(codings)
    assert (refusal.status, refusal.item.type) == (status, kind)


class FakeLoop:
    def __init__(self) -> None:
        self.passed: list[dict[str, Any]] = []

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.passed.append(context)


def test_resource_errors_are_reported_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = ResourceErrorLog(lambda: now[0])
    loop = FakeLoop()
    emfile = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        for second in range(25):  # 2,000 a second, as asyncio's accept loop reports them
            now[0] = float(second)
            for _ in range(2000):
                log.handle(loop, emfile)  # type: ignore[arg-type]
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 25 // int(RESOURCE_LOG_SECONDS) + 1
    assert reports[0].startswith("socket.accept() out of system resource (1 time(s)")
    # Each later report counts everything since the one before.
    assert f"({int(RESOURCE_LOG_SECONDS) * 2000} time(s)" in reports[1]
    assert "Too many open files" in reports[0]
    assert loop.passed == []


def test_other_loop_errors_go_to_asyncios_handler() -> None:
    loop = FakeLoop()
    context = {"message": "boom", "exception": OSError(errno.EPIPE, "Broken pipe")}
    ResourceErrorLog(lambda: 0.0).handle(loop, context)  # type: ignore[arg-type]
    ResourceErrorLog(lambda: 0.0).handle(loop, {"message": "no exception"})  # type: ignore[arg-type]
    assert loop.passed == [context, {"message": "no exception"}]
