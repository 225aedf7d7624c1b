"""A JSON body that is already bytes, as a response: how every answer of ours goes out."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


def json_response(
    content: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`content` (JSON text) with `Content-Type: application/json`, as JSONResponse sends it."""
    return Response(content, status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)
