"""GET /health and GET /model: open even when API_KEY is set."""

from collections.abc import Mapping

from fastapi import FastAPI

from app.api.deps import ModelDep
from app.api.schemas import Health, ModelCard
from app.openapi.document import Example, ExampleContext, response_examples


def _health(context: ExampleContext) -> Mapping[str, Example]:
    answer = Health(status="ok", model_version=context.model.version)
    return {"serving": Example("The model is loaded", answer)}


def _card(context: ExampleContext) -> Mapping[str, Example]:
    return {"served_model": Example("The card of the served artifact", context.model.card)}


@response_examples({200: _health})
async def get_health(model: ModelDep) -> Health:
    return Health(status="ok", model_version=model.version)


@response_examples({200: _card})
async def get_model_card(model: ModelDep) -> ModelCard:
    """Architecture, training settings, data hash, features with their ranges, headline
    metrics, and the intended use. Open even when API_KEY is set: it holds nothing secret."""
    return model.card


def add_routes(app: FastAPI) -> None:
    app.add_api_route(
        "/health",
        get_health,
        methods=["GET"],
        summary="Liveness and model version",
        response_description="The service is up and serves this model version.",
        tags=["service"],
    )
    app.add_api_route(
        "/model",
        get_model_card,
        methods=["GET"],
        summary="Model card",
        response_description="The card of the served model.",
        tags=["service"],
    )
    app.add_api_route("/health", get_health, methods=["HEAD"], include_in_schema=False)
