"""A per-worker budget of request-body bytes in flight (`DIGITS_MAX_BODY_BYTES_IN_FLIGHT`).

The body limit bounds one request's body, the connection cap the number of connections:
together they allowed 1,000 × 32 MiB ≈ 31 GiB of bodies per worker. Twenty connections
each sending a 31.5 MiB upload and holding back its last byte took a worker from 116 to
745 MiB (the Deployment's limit is 768 Mi), and the images in a body are only counted
(load shedding, service/runtime/admission.py) once it is parsed. So each request reserves
its body here before the body is read, and gives it back when the request ends: its
declared Content-Length at once, or, chunked, what it has received so far, as it grows.
A request that would take the worker past the budget gets 503 `overloaded` with
`Retry-After`, before its body is read (BodySizeLimit, service/middleware/body_limit.py).

A request is always taken when no other holds any of the budget, so one body of the
largest size always works, whatever the budget; and a small body (`SMALL_BODY_BYTES`, a
few single-image predictions) is always taken too: two connections declaring 32 MiB and
sending nothing would otherwise refuse every prediction until their 408. Small bodies
still count, and are bounded by the connection cap (1,000 × 64 KiB = 64 MiB). A request
holding a large reservation while it sends nothing keeps it until the request deadline
(408): what an attacker can hold is large uploads' room, for a connection and a slow
upload each, never the small requests'.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Scope

from service.errors import OverloadedError
from service.middleware.metrics import REQUESTS_SHED
from service.web.errors import digits_error_response

SMALL_BODY_BYTES = 64 * 1024
"""A request whose whole body is at most this is never refused for the budget."""


class BodyBudget:
    """Request-body bytes reserved in one worker process, at most `limit` (but for one
    request alone). Used from the worker's event loop only: no lock."""

    __slots__ = ("held", "limit", "small")

    def __init__(self, limit: int, small: int = SMALL_BODY_BYTES) -> None:
        self.limit = limit
        self.small = small
        self.held = 0

    def take(self, size: int, holding: int = 0) -> bool:
        """Reserves `size` more bytes for a request that already holds `holding`; False,
        reserving nothing, if that would pass the limit while other requests hold some."""
        held = self.held
        small = holding + size <= self.small
        if size and not small and held > holding and held + size > self.limit:
            return False
        self.held = held + size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size

    def refusal(self, scope: Scope) -> Response:
        """The 503 for a request refused now, counted as shed (`digits_requests_shed_total`):
        like a full image queue, a sustained rate of these means too few replicas."""
        REQUESTS_SHED.inc()
        message = (
            f"the server is busy ({self.held} bytes of request bodies in progress, at most "
            f"{self.limit}); retry shortly"
        )
        return digits_error_response(scope, OverloadedError(message))
