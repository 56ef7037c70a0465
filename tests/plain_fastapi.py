"""The service as FastAPI's own handler serves it: the reference for app/api/bodies.py's direct
call.

`plain_fastapi_app(settings)` builds the service with `StrictJSONRoute` for the prediction
routes: FastAPI's `APIRoute` and request handler, holding only the service's JSON rules (a
repeated key is a 422, `json_strict.loads` reads the body) and checking the API key before the
body is read. Every request takes FastAPI's request handler. tests/unit/api/test_bodies.py compares
answers with it; scripts/bench/asgi.py times it.
"""

from unittest import mock

from fastapi import FastAPI

from app.api import predictions
from app.api.bodies import StrictJSONRoute
from app.core.config import Settings
from app.main import create_app


def plain_fastapi_app(settings: Settings) -> FastAPI:
    with mock.patch.object(predictions, "OneStepJSONBodyRoute", StrictJSONRoute):
        return create_app(settings)
