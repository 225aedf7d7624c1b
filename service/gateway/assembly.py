"""The gateway assembled: the table checked against the app's routes, the endpoints built,
and every layer in its order, in one place.

From the outside in: the security headers (on every answer), metrics (every request
counted, the refused ones too: 401, 413, 503, 504), HEAD routed as GET, the match against
the table (once), the API key (an unauthenticated request costs nothing more), load
shedding (503 before a body is read), the deadline, the body limit and the worker's budget of
body bytes in flight (413 or 503 before a body is read; inside the deadline, so that a body
abandoned with 408 gives its share back), the middlewares added with `app.add_middleware`
(in the order added, the last one outermost, as in Starlette), and the dispatch to the
operation's endpoint or the framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from service.gateway.dispatch import Dispatch
from service.gateway.matcher import MatchOperation, OperationTable
from service.middleware.admission import LoadShedding
from service.middleware.auth import ApiKeyAuth
from service.middleware.body_limit import BodySizeLimit
from service.middleware.head import HeadAsGet
from service.middleware.metrics import Metrics, MetricsMiddleware
from service.middleware.request_timeout import RequestTimeout
from service.middleware.security_headers import SecurityHeaders
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from service.web.operation import Operation


class TableMismatchError(RuntimeError):
    """The table of operations and the app's routes disagree: a route without rules."""


def build_gateway(
    framework: ASGIApp,
    routes: Sequence[BaseRoute],
    table: OperationTable,
    added: Sequence[Middleware],
    *,
    settings: Settings,
    recognizer: Recognizer,
    metrics: Metrics,
) -> ASGIApp:
    """Every layer around `framework` (the FastAPI app itself), for `routes` (its routes)."""
    check_routes(table.operations, routes)
    endpoints = {
        operation: operation.endpoint(recognizer)
        for operation in table.operations
        if operation.endpoint is not None
    }
    gateway: ASGIApp = Dispatch(framework, endpoints)
    for middleware in reversed(added):
        gateway = middleware.cls(gateway, *middleware.args, **middleware.kwargs)
    gateway = BodySizeLimit(
        gateway,
        max_bytes=settings.max_body_bytes,
        max_bytes_in_flight=settings.max_body_bytes_in_flight,
    )
    gateway = RequestTimeout(gateway, seconds=settings.request_timeout_seconds)
    gateway = LoadShedding(gateway, admission=recognizer.admission)
    gateway = ApiKeyAuth(gateway, api_key=settings.api_key)
    gateway = MatchOperation(gateway, table)
    gateway = HeadAsGet(gateway)
    gateway = MetricsMiddleware(gateway, metrics=metrics)
    return SecurityHeaders(gateway)


def check_routes(operations: Sequence[Operation], routes: Sequence[BaseRoute]) -> None:
    """`TableMismatchError` naming every route without an operation and every operation
    without a route; the app does not start with either."""
    declared = {operation.name for operation in operations}
    served = set(_route_names(routes))
    problems = [f"route {name} has no row in the table" for name in sorted(served - declared)]
    problems += [f"operation {name} has no route" for name in sorted(declared - served)]
    if problems:
        raise TableMismatchError(
            "service/gateway/table.py and the app's routes disagree: " + "; ".join(problems)
        )


def _route_names(routes: Sequence[BaseRoute]) -> Iterable[str]:
    for route in routes:
        if isinstance(route, Mount):
            yield f"GET {route.path}/{{path:path}}"  # static files: read only
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":  # answered as GET (service/middleware/head.py)
                    yield f"{method} {route.path}"
