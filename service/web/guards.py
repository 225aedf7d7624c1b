"""Request guards shared by the routes: the body's declared media type, checked before the
body is parsed, and the recognizer the app serves."""

from __future__ import annotations

import email.message
from typing import Annotated

from fastapi import Depends, Request

from service.runtime.recognizer import Recognizer
from service.web.bounds import clip
from service.web.errors import UnsupportedMediaTypeError


def _media_type(request: Request) -> tuple[str, str]:
    message = email.message.Message()
    message["content-type"] = request.headers.get("content-type", "")
    return message.get_content_maintype(), message.get_content_subtype()


def _refuse(request: Request, wanted: str) -> UnsupportedMediaTypeError:
    declared = clip(request.headers.get("content-type") or "no Content-Type")
    return UnsupportedMediaTypeError(f"send the {wanted} (got {declared})")


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (`application/json` or `...+json`)."""
    main, sub = _media_type(request)
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        raise _refuse(request, "request as application/json")


async def require_multipart(request: Request) -> None:
    """415 unless the body is multipart/form-data."""
    if _media_type(request) != ("multipart", "form-data"):
        raise _refuse(request, "files as multipart/form-data")


async def get_recognizer(request: Request) -> Recognizer:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool,
    # one needless thread hop per request.
    recognizer: Recognizer = request.app.state.recognizer
    return recognizer


RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]
