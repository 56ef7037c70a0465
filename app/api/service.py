"""GET /health and GET /model: open even when API_KEY is set."""

from collections.abc import Mapping

from fastapi import FastAPI, Request

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
async def get_model_card(model: ModelDep, request: Request) -> ModelCard:
    """Architecture, training settings, data hash, features with their ranges, headline
    metrics, the intended use and what reporting guidelines ask (users, scope, population,
    period, subgroups, monitoring, whether predictions are recorded). Open even when API_KEY is
    set: it holds nothing secret."""
    if request.app.state.settings.record:
        return model.card
    reporting = model.card.reporting.model_copy(update={"record": False})
    return model.card.model_copy(update={"reporting": reporting})


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
