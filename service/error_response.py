"""The one `/v1` error response: `{"error": {"code", "message", "index"}}` as JSON.

Shared by the app's exception handler and by the pure-ASGI middlewares (body limit,
API key, request timeout) that answer before any route runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response

from service.schemas import ErrorDetail, ErrorResponse


def error_response(
    status: int,
    code: str,
    message: str,
    index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, index=index))
    return Response(
        body.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )
