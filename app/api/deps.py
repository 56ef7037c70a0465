"""What routes receive by injection: the served model, the settings, and the API-key guard."""

import hmac
from typing import Annotated, Final

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from app.core.config import Settings
from app.core.dataplane import ServedModel
from app.core.errors import ApiError

API_KEY_HEADER: Final = "X-API-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="ApiKey",
    description="One of the service's API keys (the API_KEY and API_KEYS settings).",
)


def served_model(request: Request) -> ServedModel:
    """The model the lifespan loaded. The prediction routes call this (and `app_settings`)
    directly: resolved as a dependency, it would cost each request about 10 us."""
    model: ServedModel = request.app.state.model
    return model


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_model(request: Request) -> ServedModel:
    return served_model(request)


async def require_api_key(
    request: Request, given: Annotated[str | None, Security(api_key_header)]
) -> None:
    """401 unless the X-API-Key header is one of the service's keys (API_KEY, API_KEYS), each
    compared in constant time; the caller's name is then the request's `caller` for the record.

    Header values arrive decoded as latin-1, so encoding them back gives the bytes on the wire.
    Whitespace around the value is not part of it (RFC 9110 5.5); llhttp keeps what follows it.
    """
    callers: dict[str, SecretStr] = request.app.state.callers
    if not callers:
        return
    if given is not None:
        # RFC 9110 5.5: whitespace around a field value is not part of it.
        wire = given.strip(" \t").encode("latin-1")
        found = None
        for name, key in callers.items():  # every key compared: the time says nothing of which
            if hmac.compare_digest(wire, key.get_secret_value().encode("utf-8")):
                found = name
        if found is not None:
            request.state.caller = found
            return
    raise api_key_error(given)


def api_key_error(given: str | None) -> ApiError:
    """The 401 for a missing (`given` None) or wrong key; the key given is never echoed."""
    problem = "is missing" if given is None else "is not the valid API key"
    return ApiError(
        401,
        ["header", API_KEY_HEADER],
        f"Header {API_KEY_HEADER} {problem}",
        "invalid_api_key" if given is not None else "missing_api_key",
        headers={"WWW-Authenticate": f'APIKey header="{API_KEY_HEADER}"'},
    )


async def check_api_key(request: Request) -> None:
    """`require_api_key` as a plain function of the request, for routes that call their endpoint
    directly (app/api/bodies.py): the same header reader, the same comparison, the same error."""
    await require_api_key(request, await api_key_header(request))


check_api_key.stands_for = require_api_key  # type: ignore[attr-defined]


ModelDep = Annotated[ServedModel, Depends(get_model)]
