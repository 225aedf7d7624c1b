"""Optional API key for the operations that need one (`DIGITS_API_KEY`), as pure ASGI.

Which operations need it is a rule of each, in the table of operations
(service/gateway/table.py: the model endpoints of both APIs); health checks (also
`/v2/health/*`, which orchestrators probe), metrics, docs and the web page stay open: they
expose nothing a caller could abuse, and probes carry no credentials. The check runs before
the body is read, so an unauthenticated client cannot make us buffer it.
"""

from __future__ import annotations

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.web.api_key import presented_key, refusal_for
from service.web.errors import error_response_for
from service.web.operation import rules_of


class ApiKeyAuth:
    """401 for operations that need the key, unless the request carries it; a no-op
    without a key."""

    def __init__(self, app: ASGIApp, api_key: SecretStr | None) -> None:
        self.app = app
        self._key = api_key.get_secret_value().encode() if api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is None or scope["type"] != "http" or not rules_of(scope).needs_key:
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
