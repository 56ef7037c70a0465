"""The two reference apps scripts/bench/http_load.py measures /predict against.

    uvicorn --factory scripts.bench.baselines:fastapi_constant   # same body model, constant answer
    uvicorn --factory scripts.bench.baselines:starlette_constant  # constant answer, body unread

`fastapi_constant` is the cost of FastAPI itself for /predict's contract: its POST /predict and
POST /predict/batch take the service's own pydantic body models (app.api.schemas), so the JSON is
parsed and validated exactly as the service does, and return a constant. `starlette_constant`
is the floor of the server stack (uvicorn + Starlette routing): it answers a constant without
reading the body.
"""

from typing import Any, Final

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.schemas import BatchRequest, PredictRequest

PREDICTION: Final[dict[str, Any]] = {
    "probability": 0.5,
    "class": "benign",
    "threshold": 0.5,
    "model_version": "000000000000",
}
PREDICTION_BYTES: Final = (
    b'{"probability":0.5,"class":"benign","threshold":0.5,"model_version":"000000000000"}'
)


def fastapi_constant() -> FastAPI:
    app = FastAPI(title="bench: FastAPI constant", openapi_url=None)

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return PREDICTION

    @app.post("/predict/batch")
    async def predict_batch(body: BatchRequest) -> dict[str, Any]:
        return {"predictions": [], "threshold": 0.5, "model_version": "000000000000"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _constant(request: Request) -> Response:
    return Response(PREDICTION_BYTES, media_type="application/json")


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def starlette_constant() -> Starlette:
    return Starlette(
        routes=[
            Route("/predict", _constant, methods=["POST"]),
            Route("/health", _health, methods=["GET"]),
        ]
    )
