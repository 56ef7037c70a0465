"""CORS and ROOT_PATH in the real headless Chromium of the docs test, network cut to loopback.

CORS: a page served from another loopback origin (a tiny http.server on its own port) calls
/predict with fetch, sending X-API-Key and X-Request-ID (so the browser sends a preflight). It
reads the answer, and the exposed X-Request-ID, when CORS_ALLOW_ORIGINS names its origin; the
browser blocks it when another origin is named or none is (the default).

ROOT_PATH: the service runs behind a small prefix-stripping proxy on loopback (what a path-based
ingress does), which forwards /ml/... as /... and answers 404 to anything else; the docs page at
/ml/docs loads everything through the prefix and its Try-it-out predicts.
"""

import http.client
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from app.openapi.examples import BENIGN
from tests.live_server import LOOPBACK, start_server
from tests.system.api import test_docs_browser as docs

KEY: Final = "cors-test-key"
PREFIX: Final = "/ml"
# Every request but loopback's (which Chromium never proxies) goes to a port nothing listens on.
DEAD_PROXY: Final = f"--proxy-server=http://{LOOPBACK}:9"
PAGE: Final = b"<!doctype html><title>caller</title><p>a page on another origin</p>"
FETCH_PREDICT: Final = """async ([url, body, key]) => {
    try {
        const response = await fetch(url + "/predict", {
            method: "POST",
            headers: {"Content-Type": "application/json", "X-API-Key": key,
                      "X-Request-ID": "browser-call-1"},
            body: JSON.stringify(body),
        });
        return {status: response.status, body: await response.json(),
                requestId: response.headers.get("X-Request-ID")};
    } catch (error) {
        return {error: String(error)};
    }
}"""
HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)


@contextmanager
def http_thread(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yields the origin."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def prefix_proxy(upstream: str, outside: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler forwarding PREFIX/... to upstream as /...; other paths get 404, recorded."""
    host, port = upstream.removeprefix("http://").rsplit(":", 1)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.forward()

        def do_POST(self) -> None:
            self.forward()

        def do_HEAD(self) -> None:
            self.forward()

        def forward(self) -> None:
            if self.path != PREFIX and not self.path.startswith(f"{PREFIX}/"):
                outside.append(self.path)
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream_connection = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                path = self.path[len(PREFIX) :] or "/"
                upstream_connection.request(self.command, path, body=body, headers=headers)
                answer = upstream_connection.getresponse()
                content = answer.read()
            finally:
                upstream_connection.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Proxy


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = docs.require_chromium(docs.CHROMIUM_PATH, os.environ)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=[*docs.CHROMIUM_ARGS, DEAD_PROXY]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def guarded(browser: Browser) -> Iterator[docs.GuardedPage]:
    """As the docs test's page, but with no Playwright route: while any route is set, Playwright
    answers every CORS preflight itself, allowing everything, so the service's own answer would
    never be tested. Requests leaving loopback go to the dead proxy instead (and are recorded)."""
    guard = docs.PageGuard()
    context = browser.new_context(service_workers="block")
    context.set_default_timeout(docs.TIMEOUT_MS)
    context.on("request", guard.on_request)
    page = context.new_page()
    page.on("console", guard.on_console)
    page.on("pageerror", guard.on_page_error)
    try:
        yield docs.GuardedPage(page, guard)
    finally:
        context.close()


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two page origins on loopback: the one the service allows, and another."""
    with http_thread(PageHandler) as allowed, http_thread(PageHandler) as other:
        yield allowed, other


def call_from(guarded: docs.GuardedPage, origin: str, service: str) -> dict[str, Any]:
    guarded.page.goto(f"{origin}/")
    result: dict[str, Any] = guarded.page.evaluate(FETCH_PREDICT, [service, BENIGN, KEY])
    return result


@pytest.mark.browser
def test_an_allowed_origin_reads_the_answer_and_its_request_id(
    guarded: docs.GuardedPage, origins: tuple[str, str]
) -> None:
    allowed, _ = origins
    with start_server({"API_KEY": KEY, "CORS_ALLOW_ORIGINS": allowed}) as server:
        with docs.diagnosed(guarded, "cors-allowed"):
            result = call_from(guarded, allowed, server.url)
            guarded.guard.assert_clean(guarded.page)
        direct = httpx.post(f"{server.url}/predict", json=BENIGN, headers={"X-API-Key": KEY})
        log = server.stderr()
    assert result.get("status") == 200, result
    assert result["body"] == direct.json()
    assert result["requestId"] == "browser-call-1"
    access = [line for line in log.splitlines() if "app.access" in line]
    assert any("OPTIONS /predict 200" in line for line in access), access


@pytest.mark.browser
@pytest.mark.parametrize("setting", ["other origin", "unset"])
def test_other_origins_are_blocked_by_the_browser(
    guarded: docs.GuardedPage, origins: tuple[str, str], setting: str
) -> None:
    allowed, other = origins
    env = {"API_KEY": KEY} | ({"CORS_ALLOW_ORIGINS": allowed} if setting == "other origin" else {})
    with start_server(env) as server:
        result = call_from(guarded, other, server.url)
        log = server.stderr()
    assert "error" in result, f"the browser let {other} read the answer: {result}"
    assert "Failed to fetch" in result["error"]
    assert "POST /predict" not in log, "the browser sent the request after a failed preflight"


@pytest.fixture(scope="module")
def behind_proxy() -> Iterator[tuple[str, list[str]]]:
    """The service with ROOT_PATH=/ml behind the prefix-stripping proxy: (proxy URL + prefix,
    the paths outside the prefix the proxy was asked for)."""
    outside: list[str] = []
    with (
        start_server({"ROOT_PATH": PREFIX}) as server,
        http_thread(prefix_proxy(server.url, outside)) as proxy,
    ):
        yield f"{proxy}{PREFIX}", outside


@pytest.mark.browser
def test_docs_and_try_it_out_work_under_the_prefix(
    guarded: docs.GuardedPage, behind_proxy: tuple[str, list[str]]
) -> None:
    base, outside = behind_proxy
    page = guarded.page
    spec = docs.fetch_spec(base)
    assert spec["servers"] == [{"url": PREFIX}]
    example = next(iter(docs.body_examples(spec, spec["paths"]["/predict"]["post"]).values()))
    with docs.diagnosed(guarded, "root-path-docs"):
        page.goto(f"{base}/docs")
        expect(page.locator("#swagger-ui .info .title")).to_contain_text(spec["info"]["title"])
        block = docs.operation_block(page, "post", "/predict")
        expect(block).to_have_count(1)
        block.locator(".opblock-summary-control").click()
        block.locator("button.try-out__btn").click()
        docs.wait_for_body(page, block.locator("textarea.body-param__text"), example)
        status, shown = docs.execute_and_read(block)
        guarded.guard.assert_clean(page)
    assert status == "200", shown
    assert shown == httpx.post(f"{base}/predict", json=example, timeout=10).json()
    assert outside == [], f"the page asked for paths outside {PREFIX}: {outside}"


@pytest.mark.browser
def test_redoc_renders_under_the_prefix(
    guarded: docs.GuardedPage, behind_proxy: tuple[str, list[str]]
) -> None:
    base, outside = behind_proxy
    with docs.diagnosed(guarded, "root-path-redoc"):
        guarded.page.goto(f"{base}/redoc")
        expect(guarded.page.locator("h1").first).to_contain_text(
            docs.fetch_spec(base)["info"]["title"]
        )
        guarded.guard.assert_clean(guarded.page)
    assert outside == [], f"the page asked for paths outside {PREFIX}: {outside}"


def test_the_root_serves_the_page_under_the_prefix(
    behind_proxy: tuple[str, list[str]],
) -> None:
    base, _ = behind_proxy
    response = httpx.get(f"{base}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f'<base href="{PREFIX}/">' in response.text
