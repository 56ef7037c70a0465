"""The application factory: `create_app(settings)`.

uvicorn --factory app.main:create_app          # settings from the environment
python -m app                                  # the same, with HOST, PORT and WORKERS
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.cors import CORSMiddleware

from app.api import add_routes
from app.api.responses import SHARED_ERROR_EXAMPLES
from app.api.v2 import PREFIX as V2_PREFIX
from app.api.v2 import body_limits
from app.dependencies import API_KEY_HEADER
from app.docs import create_documented_app
from app.errors import install_error_handlers
from app.http.access_log import AccessLog
from app.http.content_encoding import IdentityContentEncoding
from app.http.limits import BodySizeLimit
from app.http.prometheus import RequestMetrics
from app.http.protocol_errors import ProtocolErrorShape
from app.http.request_id import HEADER as REQUEST_ID_HEADER
from app.http.request_id import RequestId
from app.http.root_path import RootPath
from app.http.strict_query import StrictQuery
from app.lifespan import OneLineStartupErrors, make_lifespan
from app.logging_config import configure_logging
from app.openapi import install_openapi, operation_id
from app.predictor import PinnedArtifact
from app.settings import Settings, load_settings

TITLE: Final = "Malignancy predictor"
CORS_METHODS: Final = ("GET", "HEAD", "POST")
# The binary V2 extension's header: a browser must be allowed to send and read it.
V2_BINARY_HEADER: Final = "Inference-Header-Content-Length"
CORS_HEADERS: Final = ("Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER, V2_BINARY_HEADER)
CORS_MAX_AGE_SECONDS: Final = 600
# FastAPI's native OpenTelemetry hooks, off: asking the global providers whether anyone
# configured them, on every request, was 6.6% of the instructions of a /predict in process
# (33,000 of 500,000, valgrind), and nothing here configures them (no OpenTelemetry SDK is
# installed). The service's own telemetry is Prometheus, request ids and the access log.
FASTAPI_TELEMETRY_OFF: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}
DESCRIPTION: Final = """\
Predicts whether a breast tumour is malignant from the nine cytology scores (integers 1 to 10)
of a fine-needle aspirate, with a 9-15-1 neural network trained on the Wisconsin Breast Cancer
(Original) data set.

**Intended use: research and teaching only.** The model was trained on a 1992 data set from one
hospital. It is not a medical device and must not be used to diagnose anyone.

* Requests are strict: unknown fields, missing fields, scores outside 1..10 and non-integers
  are rejected.
* A JSON body must not repeat a key (422 `duplicate_key`), a query string must not hold a
  parameter the route does not take or one given twice, and a body must not be compressed
  (415 for any `Content-Encoding` but `identity`).
* Every error answer outside `/v2` is `{"message": ..., "detail": [{"loc", "msg", "type"}]}`;
  `message` names the first five problems (field and rule), then "and N more"; `detail` lists
  up to 100.
* When the service has an API key (setting `API_KEY`), `/predict`, `/predict/batch`,
  `/explain`, `/metrics` and the V2 infer routes need it in the `X-API-Key` header; `/health`,
  the probes, `/model`, V2 health and metadata, and the docs stay open.
* `/v2` speaks the Open Inference Protocol (KServe's and Triton's V2 REST API, with Triton's
  binary tensor extension); its errors are `{"error": ...}`, as that protocol defines them.
* Every answer carries an `X-Request-ID` header: the client's, when it sent a sane one (1 to
  128 characters of letters, digits and `._:/+=@-`), else a new one.
"""


def package_version() -> str:
    try:
        return version("malignancy-predictor")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


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
        # Starlette would redirect /predict/ to /predict with an absolute URL built from the
        # request's Host header; a trailing slash gets the service's 404 instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_openapi(app, SHARED_ERROR_EXAMPLES)
    install_error_handlers(app)
    docs_routes = len(app.router.routes)  # /openapi.json, the docs pages and their assets
    add_routes(
        app,
        api_key_required=settings.api_key is not None,
        max_batch_size=settings.max_batch_size,
    )
    # Starlette tries the routes in order: put the API's (/predict first) before the docs'.
    routes = app.router.routes
    routes[:] = routes[docs_routes:] + routes[:docs_routes]
    # The last added is the outermost.
    app.add_middleware(StrictQuery, routes=app.router.routes)
    app.add_middleware(IdentityContentEncoding)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, path_limits=body_limits(settings)
    )
    app.add_middleware(ProtocolErrorShape, prefix=V2_PREFIX)
    if settings.cors_allow_origins:  # outside the limit, so that a browser can read a 413
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=(REQUEST_ID_HEADER, V2_BINARY_HEADER),
            max_age=CORS_MAX_AGE_SECONDS,
        )
    app.add_middleware(RequestMetrics)
    app.add_middleware(AccessLog, json_lines=settings.log_format == "json")
    app.add_middleware(RequestId)  # outside the access log, which names the request's id
    if settings.root_path:  # before anything reads the path
        app.add_middleware(RootPath, root_path=settings.root_path)
    app.add_middleware(OneLineStartupErrors)
    return app
