"""ROOT_PATH in process: paths with or without the prefix reach the same routes, and every URL
the service writes (docs assets, schema servers, the page's base) carries the prefix."""

import asyncio
from typing import Final

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH

PREFIX: Final = "/ml/predictor"


def get_all(paths: list[str]) -> list[httpx.Response]:
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH, root_path=PREFIX))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return [await client.get(path) for path in paths]

    return asyncio.run(go())


@pytest.mark.parametrize(
    "path",
    [
        "/health/ready",
        f"{PREFIX}/health/ready",
        "/static-offline-docs/swagger-ui.css",
        f"{PREFIX}/static-offline-docs/swagger-ui.css",
    ],
)
def test_a_stripped_or_unstripped_path_reaches_the_route(path: str) -> None:
    (response,) = get_all([path])
    assert response.status_code == 200, response.text


def test_the_urls_the_service_writes_carry_the_prefix() -> None:
    docs, redoc, schema, root = get_all(["/docs", "/redoc", "/openapi.json", "/"])
    assert f"url: '{PREFIX}/openapi.json'" in docs.text
    assert f"{PREFIX}/static-offline-docs/swagger-ui-bundle.js" in docs.text
    assert f"{PREFIX}/docs-assets/redoc.standalone.js" in redoc.text
    assert schema.json()["servers"] == [{"url": PREFIX}]
    assert root.status_code == 200
    assert f'<base href="{PREFIX}/">' in root.text


def test_without_root_path_nothing_changes() -> None:
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH))
    assert "servers" not in app.openapi()
