"""Load shedding over HTTP: 503 `overloaded` with `Retry-After`, early and cheap; pure ASGI.

The runtime counts the images each worker process has in flight and refuses a request that
would take it past `DIGITS_MAX_QUEUED_IMAGES` (service/runtime/admission.py) as soon as the
request's images are counted, before any is decoded. While the process is already at its
bound, this middleware refuses a prediction request before its body is even read: shedding
then costs a few microseconds, not a JSON parse. Each 503 (overloaded, or the model
loading or draining: all temporary) says when to retry, in `Retry-After`
(service/web/errors.py adds it to every 503).

Only the operations whose rules say so are shed (service/gateway/table.py: the prediction
routes, `/v1/predict`, `/v1/predict/upload` and the `/v2` infer routes). Everything else —
health, readiness, metrics, metadata, the repository index, the page — is never refused,
so probes and scrapes stay fast under any load.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.runtime.admission import Admission
from service.web.errors import digits_error_response
from service.web.operation import rules_of


class LoadShedding:
    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admission.saturated and scope["type"] == "http" and rules_of(scope).sheddable:
            response = digits_error_response(scope, self.admission.refused())
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
