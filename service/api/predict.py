"""`POST /v1/predict`'s endpoint: every request of the operation, valid or not, answered
here, in pure ASGI (the gateway, service/gateway/dispatch.py, says why not in FastAPI).

1. the media type, declared as JSON (415 if not);
2. the body, read through the gateway's layers (body limit, deadline, ...);
3. the bounds check of service/web/json_body.py: UTF-8, and no more JSON values than a
   request of `DIGITS_MAX_IMAGES` images holds (422);
4. `PredictRequest`, validated from the JSON text by pydantic, in Rust, strict (422 with
   the offending image's index);
5. `dataplane.predict`, whose answer is already JSON.

Each step raises a `DigitsError`, which the gateway renders in `/v1`'s error shape.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from service.api import dataplane
from service.api.schemas import PredictRequest, max_json_values
from service.errors import InvalidRequestError
from service.runtime.recognizer import Recognizer
from service.web.asgi import header, read_body, send_content
from service.web.guards import check_json_media_type
from service.web.json_body import JsonBodyError, TooManyJsonValuesError, check_json_body_async
from service.web.validation import validate_json


class PredictEndpoint:
    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.max_images = recognizer.settings.max_images
        self.max_values = max_json_values(self.max_images)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check_json_media_type(header(scope, b"content-type"))
        body = await read_body(receive)
        if body is None:
            return  # the client went away mid-body: nobody to answer
        request = validate_json(PredictRequest, await self._judged(body))
        await send_content(send, await dataplane.predict(self.recognizer, request))

    async def _judged(self, body: bytes) -> bytes:
        """The JSON text of `body`, once it is UTF-8 and within the bound on JSON values."""
        try:
            text = await check_json_body_async(body, self.max_values)
        except TooManyJsonValuesError as error:
            raise InvalidRequestError(
                f"images: at most {self.max_images} images per request; {error}"
            ) from None
        except JsonBodyError as error:
            raise InvalidRequestError(f"request body: {error}") from None
        # The text is the body unless a byte order mark was cut off (a rare copy).
        return body if len(text) == len(body) else bytes(text)
