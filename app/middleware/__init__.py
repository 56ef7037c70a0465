"""Pure ASGI middleware, composed in one place: `stack(settings, routes)`, outermost first."""

from collections.abc import Callable, Sequence
from typing import Final

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from app.core.config import Settings
from app.core.request_id import HEADER as REQUEST_ID_HEADER
from app.lifespan import OneLineStartupErrors
from app.middleware.body_limit import BodySizeLimit, PathLimit
from app.middleware.content_encoding import IdentityContentEncoding
from app.middleware.observed import Observed
from app.middleware.request_id import RequestId
from app.middleware.root_path import RootPath
from app.middleware.strict_query import StrictQuery

API_KEY_HEADER: Final = "X-API-Key"
CORS_METHODS: Final = ("GET", "HEAD", "POST")
# The binary V2 extension's header: a browser must be allowed to send and read it.
V2_BINARY_HEADER: Final = "Inference-Header-Content-Length"
CORS_HEADERS: Final = ("Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER, V2_BINARY_HEADER)
CORS_MAX_AGE_SECONDS: Final = 600


def stack(
    settings: Settings,
    routes: Sequence[BaseRoute],
    path_limits: Sequence[PathLimit],
    release_memory: Callable[[], object],
) -> list[Middleware]:
    """The middleware every request crosses, outermost first; `release_memory` is called after
    a burst of large bodies."""
    outer = [Middleware(OneLineStartupErrors)]
    if settings.root_path:  # before anything reads the path
        outer.append(Middleware(RootPath, root_path=settings.root_path))
    outer += [
        Middleware(RequestId),  # outside the access log, which names the request's id
        Middleware(Observed, json_lines=settings.log_format == "json"),  # access log, metrics
    ]
    if settings.cors_allow_origins:  # outside the limit, so that a browser can read a 413
        outer.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_allow_origins,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=(REQUEST_ID_HEADER, V2_BINARY_HEADER),
                max_age=CORS_MAX_AGE_SECONDS,
            )
        )
    return [
        *outer,
        Middleware(
            BodySizeLimit,
            max_bytes=settings.max_body_bytes,
            path_limits=path_limits,
            max_buffered_bytes=settings.max_buffered_body_bytes,
            release=release_memory,
        ),
        Middleware(IdentityContentEncoding),
        Middleware(StrictQuery, routes=routes),
    ]
