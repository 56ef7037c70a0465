"""ROOT_PATH: serve under a path prefix that a reverse proxy adds, as uvicorn's --root-path does.

A proxy publishing the service at https://host/ml/ usually strips the prefix and forwards
/ml/predict as /predict. The ASGI scope must then say where the app is mounted: `root_path` is
the prefix and `path` the full path, prefix included (the ASGI spec; Starlette's routing and
static files strip `root_path` again). With that, the docs page asks for its assets, its schema
and Try-it-out's requests under the prefix, and the OpenAPI document names it as its server.

Done here rather than by uvicorn's own option so that ROOT_PATH works under any ASGI server. A
path that already carries the prefix (a proxy that does not strip it) is left as it is.
"""

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send


class RootPath:
    """Pure ASGI middleware mounting the app at `root_path` (non-empty, no trailing slash)."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] in ("http", "websocket"):
            root, path = self.root_path, scope["path"]
            if path != root and not path.startswith(f"{root}/"):
                path = f"{root}{path}"
            scope = {**scope, "root_path": root, "path": path}
        return self.app(scope, receive, send)
