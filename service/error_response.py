"""The one place that turns a refusal into a JSON response, in the shape its path speaks.

`/v1` (and everything else) answers `{"error": {"code", "message", "index"}}`; the Open
Inference Protocol under `/v2` has its own flat shape, `{"error": "message"}`, which
Triton and KServe clients print as the message. Every layer that refuses a request —
the app's exception handler and the pure-ASGI middlewares (body limit, API key, request
timeout) that answer before any route runs — calls `error_response_for`, so the shape
never depends on which layer said no.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Scope

from service.schemas import ErrorDetail, ErrorResponse
from service.v2_schemas import V2ErrorResponse

V2_PREFIX = "/v2"


def route_path(scope: Scope) -> str:
    """The request path as routes see it: below the proxy prefix (`root_path`), if any."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_v2_request(scope: Scope) -> bool:
    """Whether the request is under `/v2`, the Open Inference Protocol."""
    path = route_path(scope)
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def error_response_for(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the shape of the request's protocol (see the module docstring)."""
    respond = v2_error_response if is_v2_request(scope) else error_response
    return respond(status, code, message, index, headers)


def error_response(
    status: int,
    code: str,
    message: str,
    index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The `/v1` shape."""
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, index=index))
    return _json(body.model_dump_json(), status, headers)


def v2_error_response(
    status: int,
    code: str,
    message: str,
    index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The `/v2` shape: the protocol has no field for `code` or `index`, so they are dropped."""
    return _json(V2ErrorResponse(error=message).model_dump_json(), status, headers)


def _json(body: str, status: int, headers: Mapping[str, str] | None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")
