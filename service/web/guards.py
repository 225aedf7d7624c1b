"""Request guards shared by the routes and endpoints: the body's declared media type,
checked before the body is parsed, and the recognizer the app serves."""

from __future__ import annotations

import email.message
from typing import Annotated

from fastapi import Depends, Request

from service.runtime.recognizer import Recognizer
from service.web.bounds import clip
from service.web.errors import UnsupportedMediaTypeError
from service.web.responses import JSON_MEDIA_TYPE


def _media_type(content_type: str | None) -> tuple[str, str]:
    message = email.message.Message()
    message["content-type"] = content_type or ""
    return message.get_content_maintype(), message.get_content_subtype()


def _refuse(content_type: str | None, wanted: str) -> UnsupportedMediaTypeError:
    declared = clip(content_type or "no Content-Type")
    return UnsupportedMediaTypeError(f"send the {wanted} (got {declared})")


def check_json_media_type(content_type: str | None) -> None:
    """415 unless a body is declared as JSON (`application/json` or `...+json`)."""
    if content_type == JSON_MEDIA_TYPE:
        return  # nearly every request: no header parsing
    main, sub = _media_type(content_type)
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        raise _refuse(content_type, "request as application/json")


async def require_multipart(request: Request) -> None:
    """415 unless the body is multipart/form-data."""
    content_type = request.headers.get("content-type")
    if _media_type(content_type) != ("multipart", "form-data"):
        raise _refuse(content_type, "files as multipart/form-data")


async def get_recognizer(request: Request) -> Recognizer:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool,
    # one needless thread hop per request.
    recognizer: Recognizer = request.app.state.recognizer
    return recognizer


RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]
