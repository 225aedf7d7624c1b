"""Errors over HTTP, in one place: statuses, the two JSON shapes, and their documentation.

`/v1` (and everything else) answers `{"error": {"code", "message", "index"}}`; the Open
Inference Protocol under `/v2` has its own flat shape, `{"error": "message"}`, which
Triton and KServe clients print as the message. The shape is the request's operation's
(`Rules.protocol`, service/web/operation.py). Every layer that refuses a request —
the app's exception handler, the gateway and the pure-ASGI middlewares (body limit, API
key, request timeout) that answer before any endpoint runs — calls `error_response_for`,
so the shape never depends on which layer said no.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Scope

from service.errors import DigitsError, ModelNotReadyError, OverloadedError
from service.web.operation import rules_of
from service.web.responses import json_response

# Every 503 is temporary (loading, draining, overloaded, the connection cap) and says when
# to retry. A full queue (512 MNIST-size images) drains in ~0.3 s on one core (README,
# Hardening): a client retrying after a second finds room, a longer hint would idle us.
RETRY_AFTER_SECONDS = 1


class HttpError(DigitsError):
    """A refusal that only exists over HTTP, with its own status."""

    status_code: int = 400


class UnsupportedMediaTypeError(HttpError):
    status_code = 415
    code = "unsupported_media_type"


class ModelNotFoundError(HttpError):
    status_code = 404
    code = "model_not_found"


class NotSupportedError(HttpError):
    """An operation of the protocol that this server does not offer (model load/unload):
    400 as Triton answers it when model control is off, a client error not to retry (a 5xx
    would count against the server's error rate); over gRPC, UNIMPLEMENTED."""

    code = "not_supported"


def status_of(error: DigitsError) -> int:
    """The HTTP status for an error: the runtime's are the client's fault (422) but two."""
    if isinstance(error, HttpError):
        return error.status_code
    return 503 if isinstance(error, ModelNotReadyError | OverloadedError) else 422


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid_image`.")
    message: str = Field(description="Human-readable explanation.")
    index: int | None = Field(
        default=None, description="Position in `images` of the offending image, if any."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


class V2ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong (the protocol's flat error shape).")


# What each status means, for the OpenAPI document; a route may say it more precisely.
ERROR_DESCRIPTIONS = {
    400: "The request or a tensor is invalid (shape, datatype, values, an image).",
    404: "No such model or version.",
    413: "Request body larger than the configured limit.",
    415: "Body is not sent as `application/json`.",
    422: "Invalid request or image; `index` names the offending image.",
    500: "Unexpected server error.",
    503: "The model is not loaded (yet), or the server is overloaded (`overloaded`; retry "
    "after `Retry-After` seconds).",
}


def documented_errors(
    *statuses: int, v2: bool = False, **descriptions: str
) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for `statuses`, in the shape of `/v1` or (`v2`) `/v2`.

    `descriptions` overrides one, keyed `s415="..."`.
    """
    model = V2ErrorResponse if v2 else ErrorResponse
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = descriptions.get(f"s{status}") or ERROR_DESCRIPTIONS[status]
        documented[status] = {"model": model, "description": description}
    return documented


def error_response_for(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the shape of the request's protocol (see the module docstring); a 503
    carries `Retry-After` unless `headers` has its own."""
    if rules_of(scope).protocol == "v2":
        # The protocol has no field for `code` or `index`: the message carries them.
        body = V2ErrorResponse(error=message).model_dump_json()
    else:
        detail = ErrorDetail(code=code, message=message, index=index)
        body = ErrorResponse(error=detail).model_dump_json()
    if status == 503 and not any(name.lower() == "retry-after" for name in headers or ()):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
    return json_response(body.encode(), status, headers)


def internal_error_response(scope: Scope) -> Response:
    """500 for a failure that is nobody's but ours (it is logged where it is caught)."""
    return error_response_for(scope, 500, "internal_error", "internal server error")


def digits_error_response(scope: Scope, error: DigitsError) -> Response:
    """One of our errors (the runtime's, or a guard's) as the request's protocol shapes it."""
    return error_response_for(scope, status_of(error), error.code, error.message, error.index)
