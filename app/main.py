"""The application factory: `create_app(settings)`.

uvicorn --factory app.main:create_app          # settings from the environment
python -m app                                  # the same, with HOST, PORT and WORKERS
"""

from typing import Final

from fastapi import FastAPI, Security
from fastapi.telemetry import TelemetryConfig

from app import middleware, v2
from app.api import explain, feedback, metrics, monitoring, predictions, probes, service
from app.api.deps import require_api_key
from app.api.responses import SHARED_ERROR_EXAMPLES
from app.core.config import Settings, load_settings
from app.core.dataplane import PinnedArtifact
from app.core.errors import install_error_handlers
from app.core.version import package_version
from app.lifespan import make_lifespan
from app.observability.logs import configure_logging
from app.openapi.document import install_openapi, operation_id
from app.openapi.pages import create_documented_app
from app.openapi.text import DESCRIPTION, TITLE
from app.server.memory import release_free_memory
from app.ui import add_ui

# FastAPI's OpenTelemetry hooks, off: nothing here configures OpenTelemetry, and asking the
# global providers on every request was 6.6% of a /predict's instructions (valgrind).
FASTAPI_TELEMETRY_OFF: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None, pinned: PinnedArtifact | None = None) -> FastAPI:
    """Build the service; the model is loaded when the server starts (the lifespan), from
    `pinned` if given (`python -m app` does), else from MODEL_PATH."""
    settings = load_settings() if settings is None else settings
    configure_logging(settings.log_level, settings.log_format)
    app = create_documented_app(
        title=TITLE,
        version=package_version(),
        description=DESCRIPTION,
        lifespan=make_lifespan(settings, pinned),
        generate_unique_id_function=operation_id,
        telemetry=FASTAPI_TELEMETRY_OFF,
        redirect_slashes=False,  # a redirect would be built from the client's Host header
    )
    app.state.settings = settings
    app.state.callers = settings.callers()
    app.state.recorder = app.state.watch = None  # the lifespan starts them
    install_openapi(app, SHARED_ERROR_EXAMPLES)
    install_error_handlers(app)
    add_routes(app, settings)
    add_ui(app)  # the page at / and its assets under /ui
    body_limits = v2.body_limits(settings)
    layers = middleware.stack(settings, app.router.routes, body_limits, release_free_memory)
    for layer in reversed(layers):  # each add_middleware wraps the ones before
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    return app


def add_routes(app: FastAPI, settings: Settings) -> None:
    """The routes in the order Starlette tries them: the most frequent first, the docs last."""
    docs = app.router.routes[:]  # /openapi.json, the docs pages and their assets
    app.router.routes.clear()
    keyed = bool(settings.callers())
    guard = [Security(require_api_key)] if keyed else []
    predictions.add_routes(app, guard, keyed, settings.max_batch_size)
    v2.add_infer_routes(app, guard, keyed)
    explain.add_routes(app, guard, keyed)
    metrics.add_routes(app, guard, keyed)
    feedback.add_routes(app, guard, keyed)
    monitoring.add_routes(app, guard, keyed)
    service.add_routes(app)
    probes.add_routes(app)
    v2.add_routes(app)
    app.router.routes.extend(docs)
