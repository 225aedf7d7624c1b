"""A deadline for each HTTP request (`DIGITS_REQUEST_TIMEOUT_SECONDS`), and no work for
clients that left; as pure ASGI.

A request that has not started its response by the deadline gets a JSON 504 (or 408
when the client had not even finished sending the body: a slow or stalled upload)
and its connection is freed. The deadline covers only the time until the response
starts; a response already under way is never cut short.

A request is abandoned, too, when its client hangs up before the answer: once the body is
read, the connection is watched for the disconnect (the app has nothing more to receive).

Abandoning cancels the request's task without waiting for it, so the client gets its
answer on time. Decoding and inference run in worker threads, which Python cannot
interrupt; the runtime sees the cancellation and its threads stop before the next image
(service/runtime/abandon.py), so an abandoned request costs at most one image more.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

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
        started = finished = reading = timed_out = False
        client_gone = asyncio.Event()
        watcher: asyncio.Future[Message] | None = None

        async def watch_for_disconnect() -> Message:
            # The server answers a receive() after the whole body with `http.disconnect`
            # once the client is gone, or once the response is complete.
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                client_gone.set()
            return message

        async def tracking_receive() -> Message:
            nonlocal reading, watcher
            if timed_out:
                return {"type": "http.disconnect"}
            if watcher is not None:  # the app asks again after the body: share the watch
                message = await asyncio.shield(watcher)
                if message["type"] != "http.disconnect":
                    watcher = None  # handed over once; the next receive is the server's again
                return message
            # Still waiting for the client when the deadline hits: its fault, not ours.
            reading = True
            try:
                message = await receive()
            finally:
                reading = False
            if message["type"] == "http.request" and not message.get("more_body", False):
                watcher = asyncio.ensure_future(watch_for_disconnect())
                watcher.add_done_callback(_consume_outcome)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, finished
            if timed_out:
                return  # the client already has its 504
            started = started or message["type"] == "http.response.start"
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, tracking_receive, guarded_send))
        gone = asyncio.ensure_future(client_gone.wait())
        try:
            await asyncio.wait(
                {task, gone}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if task.done() or (started and not client_gone.is_set()):
                await task
                return
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            gone.cancel()
            if watcher is not None and task.done():
                watcher.cancel()
        timed_out = True
        task.cancel()
        task.add_done_callback(_consume_outcome)
        if watcher is not None:
            watcher.cancel()
        if client_gone.is_set():
            # Nobody reads this answer (the server drops it), but the metrics and the access
            # log record the request as the client's doing: nginx's 499, not a 500.
            status, code = 499, "client_closed_request"
            message = "the client closed the connection before the response"
        elif reading:
            status, code = 408, "request_body_timeout"
            message = f"the request body was not received within {self.seconds:g} s"
        else:
            status, code = 504, "request_timeout"
            message = f"the request did not complete within {self.seconds:g} s; try again later"
        # The abandoned body or work is still tied to this connection: do not reuse it.
        response = error_response_for(scope, status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    # An abandoned task's (or watch's) result or error is of no interest, but must be
    # retrieved, or asyncio logs "exception was never retrieved" for each one.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
