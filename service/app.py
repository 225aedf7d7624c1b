"""The FastAPI application: factory, lifespan, and the one exception handler.

`create_app(settings)` builds an app around any model, so tests can point it at
whatever they need; it can also take a `Predictor` that is already loaded (the
CLI loads before binding the port, so a bad model never starts a server).
"""

from __future__ import annotations

import functools
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

from service import __version__
from service.auth import ApiKeyAuth
from service.body_limit import BodySizeLimit
from service.error_response import error_response_for
from service.errors import DigitsError
from service.interop import install_interop
from service.predictor import Predictor
from service.request_timeout import RequestTimeout
from service.routes import STATIC_DIR, router
from service.settings import Settings

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
    # The shape follows the path: /v2 speaks the Open Inference Protocol's flat one.
    respond = functools.partial(error_response_for, request.scope)
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
