"""The innermost layer: an operation's dependencies, then what answers it.

An operation with an endpoint of its own (the prediction routes of both APIs) is answered
by it, directly: FastAPI's per-request layers (its exception, telemetry and body-limit
middlewares, routing, dependency solving, request and response models) cost more than the
inference of a 28×28 digit. Every other request goes to the framework, which routes it
(again: the rare routes pay for a second match) and answers it with its own machinery.

Either way the request has passed every layer of the gateway (service/app.py), the
middlewares added with `app.add_middleware` included, and the operation's dependencies
have run: nothing bypasses anything, and no body is read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import DigitsError
from service.web.errors import digits_error_response, internal_error_response
from service.web.operation import Operation, operation_of

logger = logging.getLogger(__name__)


class Dispatch:
    """Runs the matched operation: `endpoints` by operation, else `framework`."""

    def __init__(self, framework: ASGIApp, endpoints: Mapping[Operation, ASGIApp]) -> None:
        self.framework = framework
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = operation_of(scope) if scope["type"] == "http" else None
        if operation is None:
            await self.framework(scope, receive, send)  # lifespan, 404, 405
            return
        if operation.dependencies and not await self._passes(operation, scope, receive, send):
            return
        endpoint = self.endpoints.get(operation)
        if endpoint is None:
            # The framework renders its own failures (service/web/handlers.py).
            await self.framework(scope, receive, send)
            return
        try:
            await endpoint(scope, receive, send)
        except Exception as error:  # the endpoints raise before they answer
            await _refuse(operation, scope, receive, send, error)

    async def _passes(
        self, operation: Operation, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Whether every dependency lets the request through; if not, it is answered."""
        request = Request(scope, receive)
        try:
            for dependency in operation.dependencies:
                await dependency(request)
        except Exception as error:
            await _refuse(operation, scope, receive, send, error)
            return False
        return True


async def _refuse(
    operation: Operation, scope: Scope, receive: Receive, send: Send, error: Exception
) -> None:
    if isinstance(error, DigitsError):
        response = digits_error_response(scope, error)
    else:
        logger.error("unexpected error on %s", operation.name, exc_info=error)
        response = internal_error_response(scope)
    await response(scope, receive, send)
