"""The edge's own answers (app/server/edge.py's refusals), in the access log and the metrics.

See app/observability/answered.py: every answer the edge writes is logged and counted here, once.
"""

from collections.abc import Mapping
from typing import Final

from app.observability import prometheus as telemetry
from app.observability.access_lines import log_access
from app.observability.answered import EDGE, OUTCOME

NO_VALUE: Final = "-"  # a method or path the edge did not get to read


def edge_answered(
    status: int,
    kind: str,
    method: str | None,
    target: bytes | None,
    request_id: str,
    scope: Mapping[str, object] | None = None,
) -> None:
    """Log and count an answer the edge wrote itself, to a request whose method and target are
    what arrived of them (None: nothing). `scope`: the request's, when the app had begun it
    (its own answer is then dropped, and not logged or counted)."""
    if scope is not None and isinstance(state := scope.get("state"), dict):
        state[OUTCOME] = EDGE
    method = method or NO_VALUE
    telemetry.record_edge_answer(status, kind, method)
    log_access(method, path_of(target), status, None, request_id, telemetry.EDGE_ROUTE)


def path_of(target: bytes | None) -> str:
    """The path of a request target, as the access log shows it: no query string, and
    anything but printable ASCII escaped (a log line cannot be split or forged)."""
    if not target:
        return NO_VALUE
    path = target.split(b"?", 1)[0]
    return path.decode("latin-1").encode("unicode_escape").decode("ascii")
