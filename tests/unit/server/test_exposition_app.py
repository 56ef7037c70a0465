"""The exposition's ASGI app: which requests the fast text renderer answers, and how."""

import asyncio
import gzip
import struct
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from app.server.exposition import ReadableFilesCollector, exposition_app, takes_plain_text

PROMETHEUS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "plain"),
    [
        ("", True),
        ("*/*", True),
        ("text/plain", True),
        ("text/plain; version=0.0.4", True),
        (PROMETHEUS, True),
        ("application/openmetrics-text; version=1.0.0", False),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", False),
        ("application/json", False),
    ],
)
def test_takes_plain_text(accept: str, plain: bool) -> None:
    assert takes_plain_text(accept) is plain


def get(app: Any, headers: dict[str, str], query: bytes = b"") -> tuple[dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    return {k.lower(): v for k, v in sent[0]["headers"]}, sent[1]["body"]


@pytest.fixture
def app(tmp_path: Path) -> Any:
    store = MmapedDict(str(tmp_path / "counter_1.db"))  # type: ignore[no-untyped-call]
    key = mmap_key("hits", "hits_total", ["route"], ["/predict"], "Hits.")
    store.write_value(key, 3.0, 0.0)  # type: ignore[no-untyped-call]
    store.close()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(ReadableFilesCollector(str(tmp_path)))  # as serve_metrics does
    return exposition_app(registry, str(tmp_path))


def test_prometheus_gets_the_text_format_gzipped(app: Any) -> None:
    headers, body = get(app, {"Accept": PROMETHEUS, "Accept-Encoding": "gzip"})
    assert headers[b"content-type"] == b"text/plain; version=0.0.4; charset=utf-8"
    assert headers[b"content-encoding"] == b"gzip"
    assert b'hits_total{route="/predict"} 3.0\n' in gzip.decompress(body)


def test_only_openmetrics_is_answered_by_prometheus_client(app: Any) -> None:
    headers, body = get(app, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers[b"content-type"].startswith(b"application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_a_query_is_answered_by_prometheus_client(app: Any) -> None:
    _, body = get(app, {}, query=b"name[]=nothing_of_that_name")
    assert body == b""


def test_a_file_it_cannot_read_leaves_the_scrape_to_the_collector(app: Any, tmp_path: Path) -> None:
    """A key that is not UTF-8 JSON: the collector leaves that file out, the rest is served."""
    key = b"\xff\xfe not json"
    padded = len(key) + (8 - (len(key) + 4) % 8)
    entry = struct.pack("i", len(key)) + key.ljust(padded) + struct.pack("dd", 1.0, 0.0)
    header = struct.pack("i", 8 + len(entry)) + bytes(4)
    (tmp_path / "counter_2.db").write_bytes(header + entry)
    _, body = get(app, {})
    assert b'hits_total{route="/predict"} 3.0\n' in body
