"""The route template a request matched, as a bounded label for metrics and logs."""

from typing import Final

from starlette.types import Scope

from app.observability.prometheus import UNMATCHED

__all__: Final = ["UNMATCHED", "route_template"]


def route_template(scope: Scope, root_path: str) -> str:
    """After the app has run: the matched route's path template (`/predict`), a mount's prefix
    (`/static-offline-docs`), or "unmatched". Never the raw path a client sent.

    Starlette's router writes its match into the request's scope; FastAPI's routes put themselves
    there as "route" (also for a wrong method, the 405). A mount only extends "root_path", by its
    own fixed prefix; `root_path` is the value before the app ran.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and len(mounted) > len(root_path) and "endpoint" in scope:
        return mounted[len(root_path) :]
    return UNMATCHED
