"""The Open Inference Protocol's infer operations (`POST /v2/models/{model_name}/infer`
and its `/versions/{model_version}/` form): every request answered here, in pure ASGI,
like `/v1/predict` (the gateway, service/gateway/dispatch.py, says why not in FastAPI).

The endpoint reads the body and the two headers the protocol uses, and sends what the
dataplane returns; the dataplane (service/v2/dataplane.py) does the rest, and raises a
`DigitsError` for the gateway to render in the protocol's flat error shape.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from service.runtime.recognizer import Recognizer
from service.v2.codec import HEADER_LENGTH
from service.v2.dataplane import OpenInference
from service.web.asgi import header, read_body, send_content

_HEADER_LENGTH = HEADER_LENGTH.lower().encode()
_BINARY = b"application/octet-stream"


class InferEndpoint:
    def __init__(self, recognizer: Recognizer) -> None:
        self.inference = OpenInference(recognizer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return  # the client went away mid-body: nobody to answer
        params = scope["path_params"]
        answer = await self.inference.infer(
            params["model_name"],
            params.get("model_version"),
            body,
            header(scope, _HEADER_LENGTH),
            header(scope, b"content-encoding"),
        )
        if answer.json_length is None:
            await send_content(send, answer.content)
            return
        length = {_HEADER_LENGTH: str(answer.json_length).encode()}
        await send_content(send, answer.content, _BINARY, length)
