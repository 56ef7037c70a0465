"""GET /health, GET /model and the root redirect: open even when API_KEY is set."""

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from app.dependencies import ModelDep
from app.schemas import Health, ModelCard


async def health(model: ModelDep) -> Health:
    return Health(status="ok", model_version=model.version)


async def model_card(model: ModelDep) -> ModelCard:
    """Architecture, training settings, data hash, features with their ranges, headline
    metrics, and the intended use. Open even when API_KEY is set: it holds nothing secret."""
    return model.card


async def root() -> RedirectResponse:
    return RedirectResponse("/docs")


def add_routes(app: FastAPI) -> None:
    app.add_api_route(
        "/health", health, methods=["GET"], summary="Liveness and model version", tags=["service"]
    )
    app.add_api_route("/model", model_card, methods=["GET"], summary="Model card", tags=["service"])
    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
