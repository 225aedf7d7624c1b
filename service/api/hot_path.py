"""`POST /v1/predict` answered in pure ASGI, without the framework's per-request layers.

Nearly all traffic is this one route with a valid JSON body. Through FastAPI, such a
request crossed its exception, body-limit and routing layers, dependency solving, request
and response models, and cost more than the inference of a 28×28 digit (issue 14). Here
the same steps run directly, in the same order and with the same functions:

1. the body, read through the middlewares above (body limit, deadline, ...);
2. the bounds check of `service/web/json_body.py`, as the route does it;
3. `PredictRequest`, validated from the JSON text by pydantic (in Rust, strict);
4. `dataplane.predict`, the route's own call, whose answer is already JSON.

Anything this path does not accept is handed to the route, with the body it read
replayed: a media type other than plain `application/json`, or a body the bounds check
or the request model refuses. The route then answers it (415, 422, ...) exactly as it
always did, so error bodies come from one place by construction; only valid requests
are answered here. The runtime's errors (a bad image, overload, the model not ready)
are rendered by the same function as the app's error handler.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import dataplane
from service.api.schemas import PredictRequest, max_json_values
from service.errors import DigitsError
from service.runtime.recognizer import Recognizer
from service.web.errors import digits_error_response, internal_error_response, route_path
from service.web.json_body import JsonBodyError, check_json_body_async
from service.web.responses import JSON_MEDIA_TYPE

logger = logging.getLogger(__name__)

PATH = "/v1/predict"
_JSON = JSON_MEDIA_TYPE.encode()
_JSON_HEADER = (b"content-type", _JSON)


class PredictHotPath:
    """Answers valid `POST /v1/predict` requests itself; hands every other request on."""

    def __init__(self, app: ASGIApp, recognizer: Recognizer, route: APIRoute) -> None:
        self.app = app
        self.recognizer = recognizer
        self.route = route  # what routing would record in the scope (metrics label by it)
        self.max_values = max_json_values(recognizer.settings.max_images)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or route_path(scope) != PATH
            or not _declares_plain_json(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away mid-body: nobody to answer, as in the route
        request = await self._accepted(body)
        if request is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        scope["route"] = self.route
        try:
            content = await dataplane.predict(self.recognizer, request)
        except DigitsError as error:
            await digits_error_response(scope, error)(scope, receive, send)
            return
        except Exception:
            # Outside the framework, whose error handler would otherwise do this.
            logger.exception("unexpected error on POST %s", PATH)
            await internal_error_response(scope)(scope, receive, send)
            return
        headers = [_JSON_HEADER, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _accepted(self, body: bytes) -> PredictRequest | None:
        """The request, or None when the route must judge (and refuse) it."""
        try:
            text = await check_json_body_async(body, self.max_values)
            # The text is the body unless a byte order mark was cut off (a rare copy).
            return PredictRequest.model_validate_json(
                body if len(text) == len(body) else bytes(text)
            )
        except (JsonBodyError, ValidationError):
            return None


def predict_route(routes: Sequence[BaseRoute]) -> APIRoute:
    """The FastAPI route this path stands in for (and hands requests to)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path == PATH and "POST" in (route.methods or ()):
            return route
    raise LookupError(f"no POST {PATH} route to stand in for")


def _declares_plain_json(headers: list[tuple[bytes, bytes]]) -> bool:
    # Only the common spelling: any other (`+json` types, odd parameters, a missing
    # header) takes the route, whose media-type check decides.
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == _JSON
    return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app that reads the body again: `body` first, then the server's."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
