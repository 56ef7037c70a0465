"""The one-step route runs a route's dependencies on every path, or refuses to be built."""

import asyncio
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from app.api.bodies import OneStepJSONBodyRoute
from app.api.deps import check_api_key, require_api_key
from app.api.schemas import PredictRequest
from app.openapi.examples import BENIGN

VALID = BENIGN


def _post(app: FastAPI, body: dict[str, int]) -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/fast", json=body)

    return asyncio.run(post())


def _app(*dependencies: object, route_class: type = OneStepJSONBodyRoute) -> FastAPI:
    app = FastAPI()

    async def endpoint(body: PredictRequest, request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    app.router.add_api_route(
        "/fast",
        endpoint,
        methods=["POST"],
        route_class_override=route_class,
        dependencies=list(dependencies),  # type: ignore[arg-type]
    )
    return app


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        (VALID, 200, "direct"),  # valid JSON: the direct call
        ({**VALID, "mitoses": 11}, 422, "FastAPI"),  # invalid: FastAPI's handler
    ],
)
def test_a_side_effect_dependency_runs_on_every_path(
    calls: list[str], body: dict[str, int], status: int, path: str
) -> None:
    async def record(request: Request) -> None:
        calls.append(request.url.path)

    answer = _post(_app(Depends(record)), body)
    assert answer.status_code == status, path
    assert calls == ["/fast"], path


@pytest.mark.parametrize("keyed", [False, True])
def test_a_failing_dependency_stops_the_direct_call(keyed: bool) -> None:
    """With the key guard's request check in place, the other dependencies still run."""

    async def teapot(request: Request) -> None:
        raise HTTPException(418)

    if keyed:
        app = _app(
            Depends(require_api_key),
            Depends(teapot),
            route_class=OneStepJSONBodyRoute.checked_by(check_api_key),
        )
        app.state.callers = {}
    else:
        app = _app(Depends(teapot))
    assert _post(app, VALID).status_code == 418


def test_a_dependency_the_direct_call_cannot_run_fails_the_build() -> None:
    def takes_a_query(q: Annotated[str, Query()]) -> None:
        pass

    with pytest.raises(TypeError, match="takes_a_query"):
        _app(Depends(takes_a_query))


def test_the_key_guard_is_covered_by_its_request_check() -> None:
    route_class = OneStepJSONBodyRoute.checked_by(check_api_key)
    app = _app(Depends(require_api_key), route_class=route_class)  # builds: the check stands in
    assert [getattr(route, "path", None) for route in app.router.routes][-1] == "/fast"
    with pytest.raises(TypeError, match="require_api_key"):
        _app(Depends(require_api_key))  # without the check, the guard could not run directly
