"""The few ASGI steps an endpoint of the gateway takes itself: read the body, read a
header, answer with bytes that are already JSON (or binary tensors)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Receive, Scope, Send

from service.web.responses import JSON_MEDIA_TYPE

_JSON = JSON_MEDIA_TYPE.encode()


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away before sending it (the
    layers above bound its size and the time it may take)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    """The request's header `name` (lower case), decoded as HTTP headers are (latin-1)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_content(
    send: Send,
    content: bytes,
    media_type: bytes = _JSON,
    headers: Mapping[bytes, bytes] | None = None,
) -> None:
    """A 200 with `content`, in one body message."""
    raw = [(b"content-type", media_type), (b"content-length", str(len(content)).encode())]
    if headers:
        raw.extend(headers.items())
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": content})
