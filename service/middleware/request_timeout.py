"""A deadline for each HTTP request (`DIGITS_REQUEST_TIMEOUT_SECONDS`), and no work for
clients that left; as pure ASGI.

A request that has not started its response by the deadline gets a JSON 504 (or 408
when the client had not even finished sending the body: a slow or stalled upload)
and its connection is freed. The deadline covers only the time until the response
starts; a response already under way is never cut short.

A request is abandoned, too, when its client hangs up before the answer: once the body is
read and the request has run a little while, the connection is watched for the disconnect
(the app has nothing more to receive).

Abandoning cancels the request's work and answers from another task at once, so the
client gets its answer on time. Decoding and inference run in worker threads, which Python
cannot interrupt; the runtime sees the cancellation and its threads stop before the next
image (service/runtime/abandon.py), so an abandoned request costs at most one image more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, Literal

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.errors import error_response_for

# The watch for a hang-up starts this long after the request began (or when its body is
# read, if later): most requests are answered sooner and never need one (a task per request
# cost more than the rest of this middleware); a client that leaves is noticed this much
# later, which costs nothing. The same timer then waits for the deadline: one per request.
WATCH_AFTER_SECONDS = 0.02

Abandoned = Literal["deadline", "client_gone"]


class RequestTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = _Deadline(scope, receive, send, self.seconds)
        try:
            await self.app(scope, deadline.receive, deadline.send)
        except asyncio.CancelledError:
            if deadline.abandoned is None:
                raise  # cancelled from outside (the server shutting down): not ours
            uncancel = getattr(deadline.task, "uncancel", None)  # Python 3.11+: it counts cancels
            if uncancel is not None:
                uncancel()
        finally:
            deadline.timer.cancel()
            if deadline.watcher is not None:
                deadline.watcher.cancel()
        if deadline.answer is not None:
            await deadline.answer  # the request ends once its answer is out


class _Deadline:
    """One HTTP request's deadline and watch for a hang-up: the app's `receive` and `send`
    go through it. One plain object per request, its methods bound ones: no task and no
    coroutine of its own until a watch or an answer is due."""

    __slots__ = (
        "abandoned",
        "answer",
        "body_read",
        "deadline_at",
        "finished",
        "loop",
        "reading",
        "scope",
        "seconds",
        "server_receive",
        "server_send",
        "started",
        "task",
        "timer",
        "watch_due",
        "watcher",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, seconds: float) -> None:
        self.loop = loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # an ASGI server runs each request in a task
        self.task = task
        self.scope = scope
        self.server_receive = receive
        self.server_send = send
        self.seconds = seconds
        self.started = self.finished = self.reading = self.body_read = False
        self.watch_due = False
        self.abandoned: Abandoned | None = None
        self.answer: asyncio.Task[None] | None = None  # the refusal, sent on time by its own task
        self.watcher: asyncio.Future[Message] | None = None
        self.deadline_at = loop.time() + seconds
        self.timer = loop.call_later(min(WATCH_AFTER_SECONDS, seconds), self.on_timer)

    def abandon(self, why: Abandoned) -> None:
        # The app runs in this request's own task (a task of its own per request cost
        # more than all the other middlewares): it is cancelled, and the answer goes
        # out from another task at once, whatever the app is stuck in (a thread that
        # cannot be interrupted, say): the client is answered on time.
        if self.abandoned is not None or self.finished:
            return
        self.abandoned = why
        self.task.cancel()
        refusal = _refusal(self.scope, why, self.reading, self.seconds)
        self.answer = self.loop.create_task(
            refusal(self.scope, self.server_receive, self.server_send)
        )

    def on_timer(self) -> None:
        remaining = self.deadline_at - self.loop.time()
        if remaining > 0:  # the first call: time to watch, then wait for the deadline
            self.watch_due = True
            if self.body_read:
                self.start_watching()
            self.timer = self.loop.call_later(remaining, self.on_timer)
        elif not self.started:  # a response under way is never cut short
            self.abandon("deadline")

    async def watch_for_disconnect(self) -> Message:
        # The server answers a receive() after the whole body with `http.disconnect`
        # once the client is gone, or once the response is complete.
        message = await self.server_receive()
        if message["type"] == "http.disconnect" and not self.finished:
            self.abandon("client_gone")
        return message

    def start_watching(self) -> asyncio.Future[Message]:
        watcher = self.watcher
        if watcher is None:
            watcher = self.watcher = asyncio.ensure_future(self.watch_for_disconnect())
            watcher.add_done_callback(_consume_outcome)
        return watcher

    async def receive(self) -> Message:
        if self.abandoned is not None:
            return {"type": "http.disconnect"}
        if self.body_read:  # the app asks again after the body: share the watch
            message = await asyncio.shield(self.start_watching())
            if message["type"] != "http.disconnect":
                self.watcher = None  # handed over once; the next receive is the server's again
            return message
        # Still waiting for the client when the deadline hits: its fault, not ours.
        self.reading = True
        try:
            message = await self.server_receive()
        finally:
            self.reading = False
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.body_read = True
            if self.watch_due:
                self.start_watching()
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # A plain method handing back `send`'s awaitable: no coroutine of its own.
        if self.abandoned is not None:
            return _sent_nowhere()  # the client has (or will not read) its answer
        self.started = self.started or message["type"] == "http.response.start"
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.finished = True
        return self.server_send(message)


def _refusal(scope: Scope, why: Abandoned, reading: bool, seconds: float) -> Response:
    if why == "client_gone":
        # Nobody reads this answer (the server drops it), but the metrics and the access
        # log record the request as the client's doing: nginx's 499, not a 500.
        status, code = 499, "client_closed_request"
        message = "the client closed the connection before the response"
    elif reading:
        status, code = 408, "request_body_timeout"
        message = f"the request body was not received within {seconds:g} s"
    else:
        status, code = 504, "request_timeout"
        message = f"the request did not complete within {seconds:g} s; try again later"
    # The abandoned body or work is still tied to this connection: do not reuse it.
    return error_response_for(scope, status, code, message, headers={"Connection": "close"})


async def _sent_nowhere() -> None:
    pass


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    # An abandoned task's (or watch's) result or error is of no interest, but must be
    # retrieved, or asyncio logs "exception was never retrieved" for each one.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
