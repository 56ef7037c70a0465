"""What a client was really sent, and under which route, for the access log and the metrics
alike: `sent_status` and `route_template`.

The middleware that writes the access log and records the metrics (app/middleware/observed.py)
sees the status the app asks to send. Two things can make that not what the client got, and only
the edge (app/server/edge.py) knows them; it notes them in the request's `scope["state"]` (a dict
uvicorn gives each request, shared by every copy of the scope a middleware makes):

- the client left before its answer began: nginx's 499, whatever the app then tried to send
  (a 422 for a body cut short, a 500 on /v2, even a 200). `client_left(scope)`.
- the edge answered the request itself while the app was on it (a body that did not arrive in
  time: 408; a malformed chunk: 400): the edge writes that answer, logs and counts it
  (`edge_answered`, app/server/edge_answers.py), and the app's own attempt, never sent, is
  neither logged nor counted.

Every answer the edge writes goes through `edge_answered`, so that it is in the access log and
the metrics exactly once, whether or not the app had begun the request (app/server/edge_answers.py).
"""

from collections.abc import Mapping
from typing import Any, Final

from starlette.routing import Match, Mount, Route
from starlette.types import Scope

from app.observability import prometheus as telemetry

OUTCOME: Final = "malignancy_predictor.sent"
EDGE: Final = "edge"  # the edge answered (and logged, and counted) it


def _state(scope: Mapping[str, object]) -> dict[str, Any] | None:
    state = scope.get("state")
    return state if isinstance(state, dict) else None


def client_left(scope: Mapping[str, object]) -> None:
    """The client of this request closed its connection before any answer began."""
    state = _state(scope)
    if state is not None:
        state.setdefault(OUTCOME, telemetry.CLIENT_CLOSED)


def sent_status(scope: Mapping[str, Any], status: int) -> int | None:
    """What the client got, for an app that asked to send `status`: `status`, 499 if the client
    had left, or None when the edge answered instead (it logged and counted that answer)."""
    state = scope.get("state")
    if not state:
        return status
    outcome = state.get(OUTCOME)
    if outcome is None:
        return status
    return None if outcome == EDGE else int(outcome)


def route_template(scope: Scope, root_path: str) -> str:
    """After the app has run: the matched route's path template (`/predict`), a mount's prefix
    (`/static-offline-docs`), or "unmatched": a bounded label for metrics and logs, never the raw
    path a client sent.

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
    return _refused_before_routing(scope) or telemetry.UNMATCHED


def _refused_before_routing(scope: Scope) -> str | None:
    """The template of the app's route the request was for, when a middleware answered it
    before the router ran (a body too large, a Content-Encoding, a query the route does not
    take): counted under its route, as the same refusal made by the route is. Only requests
    that no route took get here, 404s mostly, which the router already matched as much."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        if isinstance(route, Route | Mount) and route.matches(scope)[0] is not Match.NONE:
            return route.path
    return None
