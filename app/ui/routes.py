"""GET / (the page) and GET /ui/{name} (its script and style sheet).

Both stay outside the OpenAPI schema and open when API_KEY is set: they hold nothing secret, and
the API the page calls is guarded as always (the user types the key into the page).

The page's URLs are all relative ("ui/app.js", "predict"), so it works behind a proxy that strips
a path prefix. Under ROOT_PATH the page also names its base (`<base href="/ml/">`), so that
/ml, without the trailing slash, resolves them under the prefix too; without ROOT_PATH it names
none, since the service cannot know a prefix nobody told it.

The assets are a fixed set, read once, and answered from memory with an ETag: a browser asks
again each time (`no-cache`) and gets a 304 while they are unchanged, so a new release is never
hidden behind a stale copy. The page's script gets what it cannot ask for without a key (the
examples, the batch limit) in a JSON block of the page, which no script runs.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from app.openapi.examples import BENIGN, BORDERLINE, MALIGNANT, PREDICT_EXAMPLES

STATIC: Final = Path(__file__).resolve().parent / "static"
PAGE_PATH: Final = "/"
ASSETS_PATH: Final = "/ui"
PAGE_FILE: Final = "index.html"
CONTENT_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
HTML: Final = "text/html; charset=utf-8"
# Everything from this origin only: no inline script or style, no plugin, no other page may frame
# it, and no <base> or form may point elsewhere. data: images are the empty favicon.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
COMMON_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
BASE_MARK: Final = "<!--base-->"
CONFIG_MARK: Final = "<!--config-->"
EXAMPLE_CASES: Final = (("benign", BENIGN), ("malignant", MALIGNANT), ("borderline", BORDERLINE))


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def load_assets(folder: Path = STATIC) -> dict[str, Asset]:
    """The served files of `folder` by name: every file whose suffix has a content type here."""
    return {
        path.name: _asset(path.read_bytes(), CONTENT_TYPES[path.suffix])
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


def page_config(max_batch_size: int) -> dict[str, Any]:
    """What the page's script needs before it has a key: the examples and the batch limit."""
    return {
        "max_batch_size": max_batch_size,
        "examples": [
            {"name": name, "label": PREDICT_EXAMPLES[name]["summary"], "scores": scores}
            for name, scores in EXAMPLE_CASES
        ],
    }


def json_block(value: object) -> str:
    """JSON safe inside a <script type="application/json"> element: no "</script>" can end it."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=8)
def render_page(template: str, root_path: str, max_batch_size: int) -> Asset:
    base = f'<base href="{escape(root_path, quote=True)}/">' if root_path else ""
    config = (
        f'<script type="application/json" id="config">{json_block(page_config(max_batch_size))}'
        "</script>"
    )
    page = template.replace(BASE_MARK, base, 1).replace(CONFIG_MARK, config, 1)
    return _asset(page.encode(), HTML)


def answer(request: Request, asset: Asset, extra: dict[str, str] | None = None) -> Response:
    """The asset, or a 304 when the browser's copy is current."""
    headers = {**COMMON_HEADERS, "ETag": asset.etag, **(extra or {})}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers, media_type=asset.content_type)


def check_template(template: str) -> str:
    """The page's template, if it has the places the base and the config go; else RuntimeError."""
    missing = [mark for mark in (BASE_MARK, CONFIG_MARK) if mark not in template]
    if missing:
        raise RuntimeError(f"{PAGE_FILE} lacks {' and '.join(missing)}")
    return template


def add_ui(app: FastAPI) -> None:
    """Serve the page at / and its assets under /ui (GET and HEAD), outside the schema."""
    template = check_template((STATIC / PAGE_FILE).read_text(encoding="utf-8"))
    assets = load_assets()

    async def page(request: Request) -> Response:
        root_path = request.scope.get("root_path", "")
        rendered = render_page(template, root_path, request.app.state.settings.max_batch_size)
        return answer(request, rendered, {"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    async def asset(request: Request, name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise HTTPException(404)
        return answer(request, found)

    methods = ["GET", "HEAD"]
    app.add_api_route(PAGE_PATH, page, methods=methods, include_in_schema=False)
    app.add_api_route(f"{ASSETS_PATH}/{{name}}", asset, methods=methods, include_in_schema=False)
