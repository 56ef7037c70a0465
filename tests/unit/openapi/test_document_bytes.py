"""/openapi.json is served from bytes written once per root path, equal to FastAPI's own
answer (the document, and the root path as its server when there is one)."""

import asyncio
import json
import time
from typing import Final

import httpx
import pytest
from fastapi.responses import JSONResponse

from app.core.config import Settings
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH

PREFIX: Final = "/ml/predictor"


def _fetch(root_path: str, times: int) -> tuple[list[httpx.Response], bytes, float]:
    """`times` answers of /openapi.json, FastAPI's rendering of the document, and the least
    time an answer after the first took (`python -m scripts.bench.body_cost --openapi`
    compares it with a write of the document, side by side)."""
    app = create_app(Settings(model_path=DEFAULT_ARTIFACT_PATH, root_path=root_path))

    async def go() -> tuple[list[httpx.Response], float]:
        transport = httpx.ASGITransport(app=app)
        answers, fastest = [], float("inf")
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            for _ in range(times):
                start = time.perf_counter()
                answers.append(await client.get("/openapi.json"))
                if len(answers) > 1:
                    fastest = min(fastest, time.perf_counter() - start)
        return answers, fastest

    answers, fastest = asyncio.run(go())
    return answers, bytes(JSONResponse(app.openapi()).body), fastest


@pytest.mark.parametrize("root_path", ["", PREFIX])
def test_every_answer_is_fastapis_document(root_path: str) -> None:
    answers, rendered, _ = _fetch(root_path, 3)
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["content-type"] for a in answers} == {"application/json"}
    assert len({a.content for a in answers}) == 1
    document = json.loads(answers[0].content)
    if root_path:
        assert document["servers"][0] == {"url": PREFIX}
        assert {k: v for k, v in document.items() if k != "servers"} == json.loads(rendered)
    else:
        assert answers[0].content == rendered
