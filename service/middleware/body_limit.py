"""413 for request bodies over the limit, as pure ASGI, with a lingering close; 503 for
those that would take the worker past its budget of body bytes in flight.

The limit is the operation's (`Rules.max_body_bytes`, service/gateway/table.py), or else
`DIGITS_MAX_BODY_BYTES`. The budget (`DIGITS_MAX_BODY_BYTES_IN_FLIGHT`) is shared by all
of a worker's requests (service/middleware/body_budget.py).

Pure ASGI (not BaseHTTPMiddleware, which buffers): a declared Content-Length over the
limit is refused before the body is read, one within it passes untouched; a chunked body
is counted as it streams and abandoned as soon as it passes the limit.

Answering and closing at once is not enough: a client that writes its whole body before
it reads (Python's `http.client`/`urllib`, for one) is still sending when the server
closes, and the kernel answers the unread data with a reset, so the client sees
`ConnectionResetError` instead of the 413. Like nginx's lingering close, the whole 413
is written first, then the rest of the body is read and thrown away — bounded in bytes
and in time, never buffered — and only then is the connection closed.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.middleware.body_budget import SMALL_BODY_BYTES, BodyBudget
from service.web.errors import error_response_for
from service.web.operation import rules_of

# How long, in all, a refused body is drained before the connection is closed; and how
# long one read may stall. nginx uses 30 s and 5 s; an honest client on any network
# worth serving from delivers the rest of a body of a few times the limit far sooner.
LINGER_SECONDS = 10.0
LINGER_READ_SECONDS = 2.0
# Drain at most this many times the limit: a body that is larger still gets its 413
# written first, but is then cut off; reading it all would let anyone keep a
# connection busy for free.
LINGER_LIMIT_MULTIPLE = 2


class _BodyRefusedError(Exception):
    """Raised into the app from `receive`: its body is over the limit or the budget."""


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        max_bytes_in_flight: int,
        small_body_bytes: int = SMALL_BODY_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes  # for operations without a limit of their own
        # This worker's bodies, all together.
        self.budget = BodyBudget(max_bytes_in_flight, small_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = rules_of(scope).max_body_bytes or self.max_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            # Nothing read yet. A client that asked before sending (`Expect: 100-continue`)
            # takes the 413 instead of the go-ahead and never sends: nothing to drain.
            linger = not _expects_continue(scope) and (declared <= LINGER_LIMIT_MULTIPLE * limit)
            await _refuse(scope, receive, send, limit, received=0, linger=linger)
            return
        if declared is None:
            await self._counted(scope, receive, send, limit)
            return
        # The server frames the body by its declared length (the HTTP parser refuses a
        # request that also says chunked): within the limit, nothing needs counting, and
        # all of it is reserved before any is read. Refused, the body is left unread: the
        # server discards it once the 503 is out (service/server/protocol.py).
        budget = self.budget
        if not budget.take(declared):
            await budget.refusal(scope)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            budget.give_back(declared)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A body of no declared length (chunked, or none at all), counted as it arrives
        against the limit and reserved, chunk by chunk, from the budget."""
        budget = self.budget
        received = reserved = 0
        exceeded = over_budget = started = finished = False

        async def counting_receive() -> Message:
            nonlocal received, reserved, exceeded, over_budget, finished
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                finished = not message.get("more_body", False)
                if received > limit:
                    exceeded = True
                    raise _BodyRefusedError
                if not budget.take(size, holding=reserved):
                    over_budget = True
                    raise _BodyRefusedError
                reserved += size
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Frameworks turn a failed body read into their own 400; ours wins.
            if exceeded or over_budget:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not (exceeded or over_budget):
                raise
        finally:
            budget.give_back(reserved)
        if started:
            return
        if exceeded:
            await _refuse(scope, receive, send, limit, received=received, linger=not finished)
        elif over_budget:
            # The rest is within the limit: the server reads and discards it (keep-alive).
            await budget.refusal(scope)(scope, receive, send)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, limit: int, *, received: int, linger: bool
) -> None:
    message = f"request body is over the limit of {limit} bytes"
    # The connection closes after this answer: the rest of the body is not wanted.
    response = error_response_for(
        scope, 413, "payload_too_large", message, headers={"Connection": "close"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    # The whole answer goes out now; the response stays open only so that the server
    # keeps the connection (and the body arriving on it) until the drain is done.
    await send({"type": "http.response.body", "body": response.body, "more_body": True})
    if linger:
        await _drain(receive, budget=LINGER_LIMIT_MULTIPLE * limit - received)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the request body until it ends, `budget` bytes or the linger time."""
    deadline = time.monotonic() + LINGER_SECONDS
    while budget > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), min(remaining, LINGER_READ_SECONDS))
        except (asyncio.TimeoutError, OSError):
            return
        if message["type"] != "http.request":
            return  # the client went away
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )
