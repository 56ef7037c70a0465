"""The page at / in the real headless Chromium of the docs test, against the real service.

Every request the page makes is routed through Playwright: one to any origin but the page's own
is aborted and recorded, and fails the test; so does any console error or uncaught script error
that the test did not expect (a 401 it provoked, say). axe-core comes from the npm registry at a
pinned version and hash, cached outside the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    FloatRect,
    Page,
    Request,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.live_server import LiveServer, start_server
from tests.system.api import test_docs_browser as docs

AXE_VERSION: Final = "4.14.1"
AXE_SHA256: Final = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
AXE_CACHE: Final = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "malignancy-predictor-tests"
    / f"axe-core-{AXE_VERSION}"
)
AXE_SCRIPT: Final = Path("node_modules") / "axe-core" / "axe.min.js"
ARTIFACTS: Final = docs.ARTIFACT_DIR
VIEWPORT: Final = ViewportSize(width=1280, height=900)


@dataclass
class OriginGuard(docs.PageGuard):
    """The docs test's guard, narrowed from loopback to one origin; it also lists the paths
    the page asked its origin for."""

    origin: str = ""
    asked: list[str] = field(default_factory=list)

    def foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in docs.LOCAL_SCHEMES:
            return False
        return f"{parts.scheme}://{parts.netloc}" != self.origin

    def route(self, route: Route) -> None:
        url = route.request.url
        if self.foreign(url):
            self._record(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def on_request(self, request: Request) -> None:
        if self.foreign(request.url):
            self._record(request.url)
        else:
            parts = urlsplit(request.url)
            self.asked.append(parts.path + (f"?{parts.query}" if parts.query else ""))

    def assert_clean(self, page: Page, expected_console: Sequence[str] = ()) -> None:
        """No foreign request, no script error, and no console error but those expected (each
        a substring of the message, such as "status of 401")."""
        super().assert_clean(page)
        unexpected = [
            message
            for message in self.console_errors
            if not any(text in message for text in expected_console)
        ]
        assert unexpected == [], f"console errors in the page: {unexpected}"


@dataclass
class UiPage:
    page: Page
    guard: OriginGuard
    base: str  # the page's URL without the trailing slash: the origin, plus any prefix

    @property
    def guarded(self) -> docs.GuardedPage:
        return docs.GuardedPage(self.page, self.guard)

    def open(self, view: str = "case", slash: bool = True) -> None:
        """Load the page at `view` and wait until it has read the model card."""
        self.page.goto(f"{self.base}{'/' if slash else ''}#{view}")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def screenshot(self, name: str, height: int | None = None) -> None:
        """The whole page, or its top `height` pixels, as test-artifacts/ui-{name}.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        clip = (
            None if height is None else FloatRect(x=0, y=0, width=VIEWPORT["width"], height=height)
        )
        self.page.screenshot(path=ARTIFACTS / f"ui-{name}.png", full_page=True, clip=clip)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = docs.require_chromium(docs.CHROMIUM_PATH, os.environ)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(docs.CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def ui_page(browser: Browser, base: str, bypass_csp: bool = False) -> Iterator[UiPage]:
    """A fresh context whose page may reach `base`'s origin only. `bypass_csp` lets axe-core's
    inline script in (the page's own policy forbids inline scripts)."""
    parts = urlsplit(base)
    guard = OriginGuard(origin=f"{parts.scheme}://{parts.netloc}")
    context = browser.new_context(
        viewport=VIEWPORT, service_workers="block", bypass_csp=bypass_csp, accept_downloads=True
    )
    context.set_default_timeout(docs.TIMEOUT_MS)
    context.route("**/*", guard.route)
    context.on("request", guard.on_request)
    page = context.new_page()
    page.on("console", guard.on_console)
    page.on("pageerror", guard.on_page_error)
    try:
        yield UiPage(page, guard, base)
    finally:
        context.close()


@pytest.fixture(scope="module")
def server(browser: Browser) -> Iterator[LiveServer]:
    """The service as shipped: no API key, the default batch limit."""
    with start_server() as live:
        yield live


@pytest.fixture
def ui(browser: Browser, server: LiveServer) -> Iterator[UiPage]:
    with ui_page(browser, server.url) as page:
        yield page


def api_text(base: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The API's answer to a request made outside the browser, for comparison."""
    response = httpx.request(method, f"{base}/{path}", timeout=30, **kwargs)
    return response


def require_npm(env: Mapping[str, str]) -> str:
    npm = shutil.which("npm")
    if npm:
        return npm
    message = "npm not found: axe-core is installed from the npm registry (apt-get install npm)"
    if env.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def axe_source() -> str:
    """axe-core's browser build at AXE_VERSION, installed once into AXE_CACHE, hash-checked."""
    script = AXE_CACHE / AXE_SCRIPT
    if not script.is_file():
        npm = require_npm(os.environ)
        AXE_CACHE.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=AXE_CACHE.parent, prefix=".axe-"))
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-save", "--ignore-scripts",
                 "--no-audit", "--no-fund", "--no-package-lock", f"axe-core@{AXE_VERSION}"],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            if not script.is_file():  # another run may have placed it meanwhile
                staging.rename(AXE_CACHE)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    data = script.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == AXE_SHA256, f"{script} is not axe-core {AXE_VERSION} as pinned: {digest}"
    return data.decode()


@pytest.fixture(scope="session")
def axe() -> str:
    return axe_source()
