"""Load shedding over HTTP: 503 `overloaded` with `Retry-After`, early and cheap; pure ASGI.

The runtime counts the images each worker process has in flight and refuses a request that
would take it past `DIGITS_MAX_QUEUED_IMAGES` (service/runtime/admission.py) as soon as the
request's images are counted, before any is decoded. This middleware adds two things:

- while the process is already at its bound, a prediction request is refused before its
  body is even read: shedding then costs a few microseconds, not a JSON parse;
- every 503 to a prediction request (overloaded, or the model loading or draining: all
  temporary) tells the client when to retry, in `Retry-After`.

Only prediction requests (POSTs to `/v1/predict`, `/v1/predict/upload` and the `/v2` infer
routes) are shed. Everything else — health, readiness, metrics, metadata, the repository
index, the page — is never refused, so probes and scrapes stay fast under any load.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime.admission import Admission
from service.web.errors import error_response_for, status_of

# The prediction routes end so, whatever prefix (root path, model name, version) precedes.
PREDICTION_PATH_ENDS = ("/v1/predict", "/v1/predict/upload", "/infer")

# A full queue (512 MNIST-size images) drains in ~0.3 s on one core (README, Hardening):
# a client retrying after a second finds room, while a longer hint would idle the server.
RETRY_AFTER_SECONDS = 1
RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_SECONDS).encode())


class LoadShedding:
    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].rstrip("/").endswith(PREDICTION_PATH_ENDS)
        ):
            await self.app(scope, receive, send)
            return
        if self.admission.saturated:
            error = self.admission.refused()
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            response = error_response_for(
                scope, status_of(error), error.code, error.message, headers=retry
            )
            await response(scope, receive, send)
            return

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"retry-after" for name, _ in headers):
                    message = {**message, "headers": [*headers, RETRY_AFTER]}
            await send(message)

        await self.app(scope, receive, send_with_retry_after)
