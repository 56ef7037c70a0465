"""The docs pages of a running server in a real headless Chromium, with the network cut to loopback.

Debian's ``chromium`` is driven by Playwright's sync API (Playwright's own browser download is not
used). Every request the page makes to a host other than loopback is aborted and recorded, and each
test asserts that there were none: a docs page that needs a CDN fails here, not on an offline host.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.live_server import start_server

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_HINT = "install Debian's Chromium with `sudo apt-get install chromium`"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
ARTIFACT_DIR = Path(__file__).resolve().parents[3] / "test-artifacts"
TIMEOUT_MS = 10_000
PREDICT_PATH = "/predict"


def require_chromium(path: Path, env: Mapping[str, str]) -> Path:
    """The browser's path; without it a skip that says how to install it, or a failure under CI."""
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = f"{path} not found: {INSTALL_HINT}"
    if env.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing browser fails the browser tests)")
    pytest.skip(message)


def is_external(url: str) -> bool:
    """Whether loading ``url`` would leave the machine (anything but loopback or in-page data)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    return parts.hostname not in LOOPBACK_HOSTS


class ExternalRequestsError(AssertionError):
    """The page tried to load something from outside loopback."""


@dataclass
class PageGuard:
    """Blocks and records external requests, and records script errors, for one browser context."""

    external: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def _record(self, url: str) -> None:
        if url not in self.external:
            self.external.append(url)

    def route(self, route: Route) -> None:
        url = route.request.url
        if is_external(url):
            self._record(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def on_request(self, request: Request) -> None:
        # Also sees requests the browser stops before routing (e.g. by a CSP): still a CDN use.
        if is_external(request.url):
            self._record(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.page_errors.append(str(error))

    def assert_clean(self, page: Page) -> None:
        """No external request and no uncaught script error once the page has gone quiet."""
        page.wait_for_load_state("networkidle")
        if self.external:
            raise ExternalRequestsError(
                f"{page.url} tried to reach hosts outside loopback (a CDN?): {self.external}"
            )
        assert self.page_errors == [], f"uncaught script errors in the page: {self.page_errors}"


@dataclass
class GuardedPage:
    page: Page
    guard: PageGuard


@contextmanager
def diagnosed(guarded: GuardedPage, name: str) -> Iterator[None]:
    """On failure: save what the page showed, and name any blocked request as the likely cause."""
    try:
        yield
    except Exception as exc:
        ARTIFACT_DIR.mkdir(exist_ok=True)
        with suppress(PlaywrightError):
            guarded.page.screenshot(path=ARTIFACT_DIR / f"{name}-failure.png", full_page=True)
        if guarded.guard.console_errors:
            exc.add_note(f"console errors in the page: {guarded.guard.console_errors}")
        if guarded.guard.external and not isinstance(exc, ExternalRequestsError):
            raise ExternalRequestsError(
                f"the page failed after its requests outside loopback were blocked "
                f"(it depends on a CDN?): {guarded.guard.external}"
            ) from exc
        raise


def fetch_spec(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/openapi.json", timeout=10)
    response.raise_for_status()
    spec: dict[str, Any] = response.json()
    return spec


def spec_operations(spec: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation in the schema, in schema order."""
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow one local ``$ref`` (``#/components/...``) if there is one."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    resolved: Mapping[str, Any] = target
    return resolved


def body_examples(spec: Mapping[str, Any], operation: Mapping[str, Any]) -> dict[str, Any]:
    """The request-body examples the schema declares, by name (what Swagger UI offers)."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "examples" in media:
        return {name: resolve(spec, ex)["value"] for name, ex in media["examples"].items()}
    if "example" in media:
        return {"example": media["example"]}
    schema = resolve(spec, media.get("schema", {}))
    if schema.get("examples"):
        return {f"example {i}": value for i, value in enumerate(schema["examples"], start=1)}
    if "example" in schema:
        return {"example": schema["example"]}
    return {}


def operation_block(page: Page, method: str, path: str) -> Locator:
    """Swagger UI's block for one operation (``data-path`` is the exact templated path)."""
    return page.locator(f".opblock.opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def wait_for_body(page: Page, textarea: Locator, expected: Any) -> Any:
    """Wait until the request-body editor holds ``expected`` (as JSON) and return it."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    text = ""
    while time.monotonic() < deadline:
        text = textarea.input_value()
        with suppress(ValueError):
            if json.loads(text) == expected:
                return expected
        page.wait_for_timeout(50)
    pytest.fail(f"the request body in Swagger UI is not the declared example {expected}: {text}")


def execute_and_read(block: Locator) -> tuple[str, dict[str, Any]]:
    """Click Execute and return the status code and the JSON response body shown in the page."""
    clear = block.locator("button.btn-clear")
    if clear.count():
        clear.click()
        expect(block.locator(".live-responses-table")).to_have_count(0)
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table")
    expect(live).to_be_visible()
    status = live.locator("tr.response > td.response-col_status").inner_text().strip()
    body_text = live.locator(".response-col_description .highlight-code pre").first.inner_text()
    body: dict[str, Any] = json.loads(body_text)
    return status, body


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium(CHROMIUM_PATH, os.environ)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server_url(browser: Browser) -> Iterator[str]:
    """The real service on a free loopback port; started after the browser, so a skip is cheap.

    `start_server` drops the service's variables from the environment: no API_KEY is set.
    """
    with start_server() as server:
        yield server.url


@pytest.fixture
def guarded(browser: Browser) -> Iterator[GuardedPage]:
    """A fresh context (own profile, no service workers) whose page can only reach loopback."""
    guard = PageGuard()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", guard.route)
    context.on("request", guard.on_request)
    page = context.new_page()
    page.on("console", guard.on_console)
    page.on("pageerror", guard.on_page_error)
    try:
        yield GuardedPage(page, guard)
    finally:
        context.close()


def test_missing_chromium_skips_with_install_hint_but_fails_under_ci(tmp_path: Path) -> None:
    missing = tmp_path / "chromium"
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium(missing, {})
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium(missing, {"CI": "false"})
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require_chromium(missing, {"CI": "true"})


@pytest.mark.parametrize(
    ("url", "external"),
    [
        ("http://127.0.0.1:8000/docs", False),
        ("http://localhost:8000/openapi.json", False),
        ("http://[::1]:8000/redoc", False),
        ("data:image/png;base64,AAAA", False),
        ("blob:http://127.0.0.1:8000/0b1c", False),
        ("https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css", True),
        ("https://cdn.redoc.ly/redoc/logo-mini.svg", True),
        ("http://127.0.0.2/", True),
        ("ws://example.org/socket", True),
    ],
)
def test_only_loopback_counts_as_local(url: str, external: bool) -> None:
    assert is_external(url) is external


@pytest.mark.browser
def test_swagger_ui_renders_every_operation_offline(server_url: str, guarded: GuardedPage) -> None:
    page, guard = guarded.page, guarded.guard
    spec = fetch_spec(server_url)
    operations = spec_operations(spec)
    assert operations, "openapi.json lists no operations"
    with diagnosed(guarded, "docs-operations"):
        page.goto(f"{server_url}/docs")
        expect(page.locator("#swagger-ui .info .title")).to_contain_text(spec["info"]["title"])
        expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
        for collapsed in page.locator(".opblock-tag-section:not(.is-open) > .opblock-tag").all():
            collapsed.click()
        missing = [
            f"{method.upper()} {path}"
            for method, path, _ in operations
            if operation_block(page, method, path).count() == 0
        ]
        assert missing == [], f"operations in openapi.json that Swagger UI does not show: {missing}"
        guard.assert_clean(page)


@pytest.mark.browser
def test_swagger_ui_try_it_out_predicts_with_the_examples(
    server_url: str, guarded: GuardedPage
) -> None:
    page, guard = guarded.page, guarded.guard
    spec = fetch_spec(server_url)
    examples = body_examples(spec, spec["paths"][PREDICT_PATH]["post"])
    assert examples, f"POST {PREDICT_PATH} declares no request-body example in openapi.json"
    classes: dict[str, str] = {}
    with diagnosed(guarded, "docs-predict"):
        page.goto(f"{server_url}/docs")
        block = operation_block(page, "post", PREDICT_PATH)
        expect(block).to_have_count(1)
        block.locator(".opblock-summary-control").click()
        block.locator("button.try-out__btn").click()
        textarea = block.locator("textarea.body-param__text")
        expect(textarea).to_be_editable()
        selector = block.locator(".opblock-section-request-body select.examples-select-element")
        if selector.count():
            names = selector.locator("option").evaluate_all("options => options.map(o => o.value)")
        else:  # Swagger UI shows a lone example without a selector
            names = list(examples)[:1]
        assert sorted(names) == sorted(examples), (
            f"Swagger UI offers the examples {names}; openapi.json declares {list(examples)}"
        )
        for index, name in enumerate(names):
            if index > 0:  # the first example must be there without touching the selector
                selector.select_option(value=name)
            body = wait_for_body(page, textarea, examples[name])
            status, shown = execute_and_read(block)
            assert status == "200", f"Swagger UI shows status {status} for {body}: {shown}"
            probability = shown.get("probability")
            assert isinstance(probability, float | int), f"no numeric probability in {shown}"
            assert not isinstance(probability, bool), shown
            assert math.isfinite(probability), shown
            assert 0.0 <= probability <= 1.0, shown
            direct = httpx.post(f"{server_url}{PREDICT_PATH}", json=body, timeout=10)
            assert direct.status_code == 200, direct.text
            assert shown == direct.json(), "the page shows a different answer than a direct POST"
            classes[name] = str(shown.get("class"))
            if index == 0:
                save_predict_screenshot(page, block)
        guard.assert_clean(page)
    assert set(classes.values()) == {"benign", "malignant"}, (
        f"the docs examples should include a benign and a malignant case; got {classes}"
    )


def save_predict_screenshot(page: Page, block: Locator) -> None:
    """The /predict block from its header down to the live response, as a test artifact."""
    ARTIFACT_DIR.mkdir(exist_ok=True)
    clip = block.evaluate(
        """block => {
            const top = block.getBoundingClientRect();
            const live = block.querySelector('.live-responses-table').getBoundingClientRect();
            return {x: top.left + window.scrollX, y: top.top + window.scrollY,
                    width: top.width, height: live.bottom - top.top};
        }"""
    )
    page.screenshot(path=ARTIFACT_DIR / "docs-predict.png", full_page=True, clip=clip)


@pytest.mark.browser
def test_redoc_renders_offline(server_url: str, guarded: GuardedPage) -> None:
    page, guard = guarded.page, guarded.guard
    spec = fetch_spec(server_url)
    with diagnosed(guarded, "docs-redoc"):
        page.goto(f"{server_url}/redoc")
        expect(page.locator("h1").first).to_contain_text(spec["info"]["title"])
        missing = [
            f"{method.upper()} {path}"
            for method, path, operation in spec_operations(spec)
            if page.locator(f'[data-item-id$="operation/{operation.get("operationId")}"]').count()
            == 0
        ]
        assert missing == [], f"operations in openapi.json that ReDoc does not list: {missing}"
        ARTIFACT_DIR.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACT_DIR / "docs-redoc.png")
        guard.assert_clean(page)


@pytest.mark.browser
def test_swagger_ui_shows_the_served_models_answers_as_response_examples(
    server_url: str, guarded: GuardedPage
) -> None:
    """Each documented response of /predict shows its first real example, not a made-up one."""
    page, guard = guarded.page, guarded.guard
    spec = fetch_spec(server_url)
    version = httpx.get(f"{server_url}/health", timeout=10).json()["model_version"]
    responses = spec["paths"][PREDICT_PATH]["post"]["responses"]
    with diagnosed(guarded, "docs-response-examples"):
        page.goto(f"{server_url}/docs")
        block = operation_block(page, "post", PREDICT_PATH)
        block.locator(".opblock-summary-control").click()
        for status, response in responses.items():
            examples = response["content"]["application/json"]["examples"]
            row = block.locator(f'tr.response[data-code="{status}"]')
            expect(row).to_be_visible()
            shown = json.loads(row.locator(".highlight-code pre").first.inner_text())
            assert shown == next(iter(examples.values()))["value"], status
            if status == "200":
                assert shown["model_version"] == version
        guard.assert_clean(page)
