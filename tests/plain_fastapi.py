"""The service as plain FastAPI would serve it: the reference for app/http/bodies.py's direct call.

`plain_fastapi_app(settings)` builds the service with FastAPI's own `APIRoute` for the
prediction routes, so every request takes FastAPI's request handler. tests/http/test_bodies.py
compares answers with it; scripts/bench/asgi.py times it.
"""

from unittest import mock

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import predictions
from app.main import create_app
from app.settings import Settings


class PlainRoute(APIRoute):
    """FastAPI's own route, standing in for OneStepJSONBodyRoute (and its checked variants)."""

    @classmethod
    def checked_by(cls, check: object) -> type[APIRoute]:
        return cls


def plain_fastapi_app(settings: Settings) -> FastAPI:
    with mock.patch.object(predictions, "OneStepJSONBodyRoute", PlainRoute):
        return create_app(settings)
