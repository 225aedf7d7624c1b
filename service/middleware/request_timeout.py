"""A deadline for each HTTP request (`DIGITS_REQUEST_TIMEOUT_SECONDS`), as pure ASGI.

A request that has not started its response by the deadline gets a JSON 504 (or 408
when the client had not even finished sending the body: a slow or stalled upload)
and its connection is freed. The deadline covers only the time until the response
starts; a response already under way is never cut short.

The work behind a timed-out request cannot be stopped: decoding and inference run
in worker threads, which Python cannot interrupt. So the request's task is
abandoned rather than awaited — its thread finishes on its own, its output is
dropped — and the client gets its answer on time. Sustained overload is what this
is for: clients see a clear 504 instead of a hung connection.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.errors import error_response_for


class RequestTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = reading = timed_out = False

        async def tracking_receive() -> Message:
            nonlocal reading
            if timed_out:
                return {"type": "http.disconnect"}
            # Still waiting for the client when the deadline hits: its fault, not ours.
            reading = True
            try:
                return await receive()
            finally:
                reading = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the client already has its 504
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, tracking_receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.seconds)
            if done or started:
                await task
                return
        except asyncio.CancelledError:
            task.cancel()
            raise
        timed_out = True
        task.cancel()
        task.add_done_callback(_consume_outcome)
        if reading:
            status, code = 408, "request_body_timeout"
            message = f"the request body was not received within {self.seconds:g} s"
        else:
            status, code = 504, "request_timeout"
            message = f"the request did not complete within {self.seconds:g} s; try again later"
        # The abandoned body or work is still tied to this connection: do not reuse it.
        response = error_response_for(scope, status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)


def _consume_outcome(task: asyncio.Future[None]) -> None:
    # An abandoned task's result or error is of no interest, but must be retrieved, or
    # asyncio logs "exception was never retrieved" for each one.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
