"""Optional API key for the model endpoints (`DIGITS_API_KEY`), as pure ASGI middleware.

Matching by path prefix rather than per route means every route anyone adds under
`/v1/` or `/v2/` is covered without remembering a dependency. Health checks (also
`/v2/health/*`, which orchestrators probe), metrics, docs and the web page stay open:
they expose nothing a caller could abuse, and probes carry no credentials. The check
runs before the body is read, so an unauthenticated client cannot make us buffer it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.web.errors import error_response_for, route_path

PROTECTED_PREFIXES: tuple[str, ...] = ("/v1", "/v2")
OPEN_PREFIXES: tuple[str, ...] = ("/v2/health",)


def is_protected(path: str) -> bool:
    """Whether `path` (without the root path) needs the key."""

    def under(prefix: str) -> bool:
        return path == prefix or path.startswith(prefix + "/")

    return any(map(under, PROTECTED_PREFIXES)) and not any(map(under, OPEN_PREFIXES))


class ApiKeyAuth:
    """401 on protected paths unless the request carries the key; a no-op without a key."""

    def __init__(self, app: ASGIApp, api_key: SecretStr | None) -> None:
        self.app = app
        self._key = api_key.get_secret_value().encode() if api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is None or scope["type"] != "http" or not is_protected(route_path(scope)):
            await self.app(scope, receive, send)
            return
        refusal = refusal_for(presented_key(scope["headers"]), self._key)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = error_response_for(
            scope,
            401,
            "unauthorized",
            f"{refusal}: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def refusal_for(presented: bytes | None, key: bytes) -> str | None:
    """Why a request presenting `presented` is refused, or None if it carries `key`. Also
    the gRPC server's check (service/grpc/servicer.py), on its metadata."""
    # Constant-time comparison: the time taken must not tell how much of a guess was right.
    if presented is not None and hmac.compare_digest(presented, key):
        return None
    return "missing API key" if presented is None else "invalid API key"


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key in lower-case `headers` (or gRPC metadata), from either header it may be in."""
    for name, value in headers:
        if name == b"x-api-key":
            return bytes(value.strip())
        if name == b"authorization":
            scheme, _, credentials = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return None
