"""The app's one exception handler: every failure, ours or the framework's, as one JSON error
in the shape of the request's protocol (service/web/errors.py)."""

from __future__ import annotations

import functools
import logging
from http import HTTPStatus

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service.errors import DigitsError
from service.web.errors import (
    digits_error_response,
    error_response_for,
    internal_error_response,
)
from service.web.validation import validation_message

logger = logging.getLogger(__name__)

_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)


def install_error_handler(app: FastAPI) -> None:
    for exception_type in (DigitsError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(exception_type, handle_error)


async def handle_error(request: Request, error: Exception) -> Response:
    if isinstance(error, DigitsError):
        return digits_error_response(request.scope, error)
    respond = functools.partial(error_response_for, request.scope)
    if isinstance(error, RequestValidationError):
        message, index = validation_message(error.errors())
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
    return internal_error_response(request.scope)
