"""The documentation pages, /docs (Swagger UI) and /redoc, with no asset from a CDN.

The JavaScript, CSS and favicon are the copies `fastapi-offline` ships, served by this app under
/static-offline-docs. One thing in them still reaches out at run time: ReDoc's sidebar credit
("API docs by Redocly") loads its logo from cdn.redoc.ly. So /redoc loads a copy of ReDoc's bundle
with that one URL replaced by an empty data: URL (the image fails, and ReDoc then hides it),
served from memory under /docs-assets. Both pages also send a Content-Security-Policy that keeps
images on this server, in case a future bundle adds another.
"""

from pathlib import Path
from typing import Any, Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline

STATIC_URL: Final = "/static-offline-docs"
PATCHED_ASSETS_URL: Final = "/docs-assets"
OFFLINE_ASSETS: Final = Path(fastapi_offline.__file__).resolve().parent / "static"
REDOC_BUNDLE: Final = "redoc.standalone.js"
REDOC_LOGO_URL: Final = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
CONTENT_SECURITY_POLICY: Final = "img-src 'self' data:"
# Swagger UI's default online validator badge would call validator.swagger.io.
SWAGGER_UI_PARAMETERS: Final = {"validatorUrl": None}


def create_documented_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app (kwargs as for FastAPI) serving offline /docs and /redoc pages."""
    app = FastAPIOffline(
        docs_url=None,  # the pages are added below, with the security policy
        redoc_url=None,
        static_url=STATIC_URL,
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        **kwargs,
    )
    openapi_url = app.openapi_url or "/openapi.json"
    redoc_bundle = offline_redoc_bundle()
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return _with_policy(page)

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{PATCHED_ASSETS_URL}/{REDOC_BUNDLE}",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        oauth2_redirect_url, swagger_ui_redirect, methods=["GET"], include_in_schema=False
    )

    async def redoc_js() -> Response:
        return Response(redoc_bundle, media_type="text/javascript; charset=utf-8")

    app.add_api_route(REDOC_URL, redoc, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        f"{PATCHED_ASSETS_URL}/{REDOC_BUNDLE}", redoc_js, methods=["GET"], include_in_schema=False
    )
    return app


def offline_redoc_bundle() -> bytes:
    """ReDoc's bundle with the sidebar logo's CDN URL replaced by an empty data: URL."""
    return (OFFLINE_ASSETS / REDOC_BUNDLE).read_bytes().replace(REDOC_LOGO_URL, b"data:,")


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
