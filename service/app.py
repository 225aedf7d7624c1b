"""The FastAPI application: factory, lifespan, the one error shape, the body limit.

`create_app(settings)` builds an app around any model, so tests can point it at
whatever they need; it can also take a `Predictor` that is already loaded (the
CLI loads before binding the port, so a bad model never starts a server).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__
from service.auth import ApiKeyAuth
from service.error_response import error_response
from service.errors import DigitsError
from service.interop import install_interop
from service.predictor import Predictor
from service.request_timeout import RequestTimeout
from service.routes import STATIC_DIR, router
from service.settings import Settings
from service.v2 import is_v2_request, v2_error_response

logger = logging.getLogger(__name__)

_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """The service for `settings`; loads the model in the background unless `predictor` is."""
    settings = settings or Settings()
    app = FastAPI(
        title="digits",
        summary="Handwritten-digit recognition with a LiteRT model.",
        version=__version__,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.predictor = predictor or Predictor(settings)
    app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # One handler turns every failure, ours or the framework's, into one JSON shape.
    for exception_type in (DigitsError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(exception_type, handle_error)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last = outermost: an unauthenticated request is refused before anything else.
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)
    app.add_middleware(ApiKeyAuth, api_key=settings.api_key)
    install_interop(app)  # /v2, uploads, /metrics (its middleware outermost), OpenAPI
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    predictor: Predictor = app.state.predictor
    if predictor.state == "loading":
        # Load off the event loop and without blocking start-up: /healthz answers at once,
        # /readyz turns 200 when the model is verified and warm.
        threading.Thread(
            target=_load_in_background, args=(predictor,), name="digits-model-loader", daemon=True
        ).start()
    yield


def _load_in_background(predictor: Predictor) -> None:
    try:
        predictor.load()
    except Exception as error:
        logger.error("model not loaded: %s", error)


async def handle_error(request: Request, error: Exception) -> Response:
    # The Open Inference Protocol has its own, flat shape: {"error": "message"}.
    respond = v2_error_response if is_v2_request(request.scope) else error_response
    if isinstance(error, DigitsError):
        return respond(error.status_code, error.code, error.message, error.index)
    if isinstance(error, RequestValidationError):
        message, index = _validation_message(error.errors())
        return respond(422, "invalid_request", message, index)
    if isinstance(error, HTTPException):
        if error.status_code == HTTPStatus.BAD_REQUEST:
            # The framework's "error parsing the body" (e.g. JSON nested too deep to parse):
            # to a client, the same kind of failure as any other unparsable body.
            return respond(422, "invalid_request", f"request body: {error.detail}")
        status = error.status_code
        phrase = HTTPStatus(status).phrase if status in _KNOWN_STATUSES else "HTTP error"
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        message = error.detail if isinstance(error.detail, str) else phrase
        if status == HTTPStatus.NOT_FOUND:
            message = f"no such endpoint: {request.url.path}"
        elif status == HTTPStatus.METHOD_NOT_ALLOWED:
            allowed = (error.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        return respond(status, code, message, headers=error.headers)
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return respond(500, "internal_error", "internal server error")


def _validation_message(errors: Any) -> tuple[str, int | None]:
    first = errors[0]
    location = list(first["loc"])
    if location[:1] == ["body"]:
        location = location[1:]
    if first["type"] == "json_invalid":
        message = f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
    elif not location and first["type"] == "missing":
        message = "request body is required (a JSON object)"
    else:
        where = ".".join(str(part) for part in location) or "request body"
        message = f"{where}: {first['msg']}"
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    # Errors inside one image name it, like errors found while decoding it.
    index = location[1] if len(location) > 1 and location[0] == "images" else None
    return message, index if isinstance(index, int) else None


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimit:
    """413 for bodies over `max_bytes`, without reading them into memory.

    Pure ASGI (not BaseHTTPMiddleware, which buffers): a declared Content-Length over the
    limit is refused before the body is read; a chunked body is counted as it streams
    and abandoned as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return

        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Frameworks turn a failed body read into their own 400; ours wins.
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._too_large(scope)(scope, receive, send)

    def _too_large(self, scope: Scope) -> Response:
        message = f"request body is over the limit of {self.max_bytes} bytes"
        respond = v2_error_response if is_v2_request(scope) else error_response
        response = respond(413, "payload_too_large", message)
        # The rest of the body is unwanted: close the connection instead of reading it all.
        response.headers["connection"] = "close"
        return response


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
