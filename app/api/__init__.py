"""The HTTP API, one module per resource or protocol; `add_routes` puts them on an app."""

from fastapi import FastAPI, Security

from app.api import explain, metrics, predictions, probes, service, v2
from app.dependencies import require_api_key


def add_routes(app: FastAPI, api_key_required: bool, max_batch_size: int) -> None:
    """The API routes, /predict first as the most frequent. With `api_key_required`,
    /predict, /predict/batch, /explain, /metrics and /v2 infer need the X-API-Key header."""
    guard = [Security(require_api_key)] if api_key_required else []
    predictions.add_routes(app, guard, api_key_required, max_batch_size)
    v2.add_infer_routes(app, guard, api_key_required)
    explain.add_routes(app, guard, api_key_required)
    metrics.add_routes(app, guard, api_key_required)
    service.add_routes(app)
    probes.add_routes(app)
    v2.add_routes(app)
