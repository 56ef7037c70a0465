"""app/ui/routes.py in process: what the page and its assets are answered with.

The page's behaviour in a browser is tests/system/ui; here, the HTTP side: content types, the
security headers, revalidation by ETag, the base under a root path, the config block, the schema
and the wheel's package data.
"""

import asyncio
import json
import re
import tomllib
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from app.openapi.examples import BENIGN, BORDERLINE, MALIGNANT
from app.ui import routes
from model.artifact import DEFAULT_ARTIFACT_PATH

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
CONFIG_BLOCK: Final = re.compile(r'<script type="application/json" id="config">(.*?)</script>')
Request = tuple[str, str, dict[str, str]]


def answers(requests: Sequence[Request], **settings: Any) -> list[httpx.Response]:
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH, **settings))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return [await client.request(m, path, headers=h) for m, path, h in requests]

    return asyncio.run(go())


def get(*paths: str, **settings: Any) -> list[httpx.Response]:
    return answers([("GET", path, {}) for path in paths], **settings)


def config_of(page: str) -> dict[str, Any]:
    found = CONFIG_BLOCK.search(page)
    assert found, "the page has no config block"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ],
)
def test_each_file_has_its_type_and_the_security_headers(path: str, content_type: str) -> None:
    (response,) = get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])


def test_the_asset_is_the_file_as_committed() -> None:
    js, css = get("/ui/app.js", "/ui/style.css")
    assert js.content == (routes.STATIC / "app.js").read_bytes()
    assert css.content == (routes.STATIC / "style.css").read_bytes()


def test_the_page_allows_its_own_origin_only() -> None:
    (page,) = get("/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    # Nothing in the page itself names another origin either.
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)


@pytest.mark.parametrize("path", ["/", "/ui/app.js"])
def test_a_current_copy_is_answered_304_without_a_body(path: str) -> None:
    (first,) = get(path)
    etag = first.headers["etag"]
    again, stale = answers(
        [("GET", path, {"If-None-Match": etag}), ("GET", path, {"If-None-Match": '"old"'})]
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert stale.status_code == 200
    assert stale.content == first.content


def test_head_answers_the_headers_without_a_body() -> None:
    (head,) = answers([("HEAD", "/", {})])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/index.html", "/ui/..%2Fapp.js", "/ui/"])
def test_only_the_served_assets_are_found(path: str) -> None:
    (response,) = get(path)
    assert response.status_code == 404
    assert response.json()["message"]  # the service's own error shape


def test_a_query_string_is_refused_as_everywhere_else() -> None:
    (response,) = get("/?utm_source=x")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "utm_source"]


def test_the_page_and_its_assets_are_not_in_the_schema() -> None:
    (schema,) = get("/openapi.json")
    paths = schema.json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith(routes.ASSETS_PATH)]


def test_the_docs_are_still_served() -> None:
    (docs,) = get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text


@pytest.mark.parametrize("root_path", ["/ml", "/deep/prefix"])
def test_under_a_root_path_the_page_names_its_base(root_path: str) -> None:
    stripped, unstripped = get("/", f"{root_path}/", root_path=root_path)
    for page in (stripped, unstripped):
        assert f'<base href="{root_path}/">' in page.text


def test_without_a_root_path_the_page_names_no_base() -> None:
    (page,) = get("/")
    assert "<base" not in page.text
    # Every URL the page names is relative: it works under any prefix a proxy strips.
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert urls, "the page names no URL"
    assert [url for url in urls if url.startswith("/")] == []


def test_the_config_block_holds_the_examples_and_the_batch_limit() -> None:
    (page,) = get("/", max_batch_size=250)
    config = config_of(page.text)
    assert config["max_batch_size"] == 250
    assert [e["scores"] for e in config["examples"]] == [BENIGN, MALIGNANT, BORDERLINE]
    assert all(e["label"] for e in config["examples"])


@pytest.mark.parametrize("text", ["</script><script>alert(1)</script>", "a & b", "<!--"])
def test_the_config_block_cannot_be_closed_by_its_content(text: str) -> None:
    block = routes.json_block({"label": text})
    assert set(block).isdisjoint("<>&")
    assert json.loads(block) == {"label": text}


def test_the_template_must_carry_its_marks() -> None:
    with pytest.raises(RuntimeError, match="lacks"):
        routes.check_template("<!doctype html><title>no marks</title>")


def test_the_wheel_carries_every_static_file() -> None:
    """pyproject.toml's package data for app.ui matches each file the routes serve."""
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["app.ui"]
    assert "app.*" in setuptools["packages"]["find"]["include"]
    files = [p.relative_to(routes.STATIC.parent) for p in routes.STATIC.rglob("*") if p.is_file()]
    assert files
    unshipped = [str(f) for f in files if not any(fnmatch(str(f), pat) for pat in patterns)]
    assert unshipped == []
