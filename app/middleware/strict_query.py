"""Refuse a query parameter the route does not take, or one given twice, with a 422 naming it."""

from collections import Counter
from collections.abc import Sequence
from typing import Final

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import ErrorItem, error_response

QUERY: Final = "query"


class StrictQuery:
    """Pure ASGI middleware holding query strings to what the matched route declares.

    FastAPI ignores a parameter no route declares (`?treshold=0.9`, `?Threshold=0.9`: the default
    applies, silently) and takes the last of a repeated one (`?threshold=0.5&threshold=0.9`), so a
    client, a proxy and the service could read one URL three ways. Here each unknown name and each
    repeated one is a 422 whose `loc` names it, before the route runs. The parameters' values are
    the routes' business (/metrics reads its threshold by JSON's number grammar).

    The route is found as the router finds it, among `routes` (the app's list, read at each
    request, so routes added later count); a request no route takes fully (a 404 or a 405) passes
    on untouched. A request without a query string costs one test.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        self._declared: dict[int, frozenset[str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            errors = self._errors(scope)
            if errors:
                await error_response(422, errors, scope=scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _errors(self, scope: Scope) -> list[ErrorItem]:
        declared = self._route_parameters(scope)
        if declared is None:
            return []
        counts = Counter(name for name, _ in QueryParams(scope["query_string"]).multi_items())
        takes = ", ".join(sorted(declared)) or "no query parameters"
        errors = [
            ErrorItem(
                loc=[QUERY, name],
                msg=f"Unknown query parameter; this route takes {takes}",
                type="extra_forbidden",
            )
            for name in counts
            if name not in declared
        ]
        errors += [
            ErrorItem(
                loc=[QUERY, name],
                msg="Query parameter is given more than once; give it once",
                type="duplicate_key",
            )
            for name, n in counts.items()
            if n > 1 and name in declared
        ]
        return errors

    def _route_parameters(self, scope: Scope) -> frozenset[str] | None:
        """The query parameter names of the route that takes this request; None if none does."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return self._declared_by(route)
        return None

    def _declared_by(self, route: BaseRoute) -> frozenset[str]:
        names = self._declared.get(id(route))
        if names is None:
            names = frozenset()
            if isinstance(route, APIRoute):
                names = frozenset(_query_parameters(route.dependant))
            self._declared[id(route)] = names
        return names


def _query_parameters(dependant: Dependant) -> set[str]:
    """The query parameter names a route's endpoint and its dependencies read."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameters(dependency)
    return names
