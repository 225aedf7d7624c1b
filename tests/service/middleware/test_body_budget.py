"""The budget of body bytes in flight (`DIGITS_MAX_BODY_BYTES_IN_FLIGHT`), in-process:
declared lengths reserved before the body is read, chunked ones as they grow, the share
given back however a request ends, and a request alone always taken."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message, Receive, Scope, Send

from service.middleware.body_limit import BodySizeLimit
from tests.asgi import http_scope

LIMIT = 1000  # the body limit
BUDGET = 1500


async def _read_and_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, waits for the scope's `hold` event if it has one (a request
    still in flight), then answers 200 with the body's size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if "hold" in scope:
        await scope["hold"].wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


class _Call:
    """One request through the middleware: what it read and what it was answered."""

    def __init__(self, declared: int | None, chunks: list[bytes]) -> None:
        headers = [(b"content-length", str(declared).encode())] if declared is not None else []
        self.scope = http_scope("POST", "/v1/predict", headers)
        self.chunks = list(chunks)
        self.reads = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.reads += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        body = self.chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    def error(self) -> tuple[str, str | None]:
        headers = dict(self.sent[0]["headers"])
        retry = headers.get(b"retry-after")
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        return json.loads(body)["error"]["code"], retry.decode() if retry else None

    async def through(self, middleware: BodySizeLimit) -> None:
        await middleware(self.scope, self.receive, self.send)


def _holding(middleware: BodySizeLimit, size: int) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A request in flight with `size` declared bytes, until the event is set."""
    call = _Call(size, [b"x" * size])
    call.scope["hold"] = release = asyncio.Event()
    return asyncio.ensure_future(call.through(middleware)), release


def _middleware(small: int = 0) -> BodySizeLimit:
    # No small bodies by default: these bodies are all small next to the real 64 KiB.
    return BodySizeLimit(
        _read_and_answer, max_bytes=LIMIT, max_bytes_in_flight=BUDGET, small_body_bytes=small
    )


def test_a_declared_body_past_the_budget_is_refused_unread() -> None:
    async def scenario() -> None:
        middleware = _middleware()
        holder, release = _holding(middleware, 1000)
        await asyncio.sleep(0.01)  # it reserves, reads, and waits
        assert middleware.budget.held == 1000
        refused = _Call(600, [b"x" * 600])
        await refused.through(middleware)
        assert refused.status == 503 and refused.reads == 0
        assert refused.error() == ("overloaded", "1")
        fits = _Call(500, [b"x" * 500])  # exactly at the budget
        await fits.through(middleware)
        assert fits.status == 200
        release.set()
        await holder
        assert middleware.budget.held == 0

    asyncio.run(scenario())


def test_a_small_body_is_always_taken_though_large_ones_hold_the_budget() -> None:
    async def scenario() -> None:
        middleware = _middleware(small=100)  # bodies of up to 100 bytes always taken
        holder, release = _holding(middleware, 1000)
        other, release_other = _holding(middleware, 500)  # the budget is now full
        await asyncio.sleep(0.01)
        assert middleware.budget.held == 1500
        small = _Call(100, [b"x" * 100])
        await small.through(middleware)
        assert small.status == 200  # counted while in flight, never refused
        larger = _Call(101, [b"x" * 101])
        await larger.through(middleware)
        assert larger.status == 503 and larger.reads == 0
        release.set()
        release_other.set()
        await holder
        await other
        assert middleware.budget.held == 0

    asyncio.run(scenario())


def test_a_request_alone_is_always_taken() -> None:
    async def scenario() -> None:
        # A budget below one body of the largest size still takes one at a time.
        middleware = BodySizeLimit(
            _read_and_answer, max_bytes=LIMIT, max_bytes_in_flight=500, small_body_bytes=0
        )
        for declared, chunks in ((1000, [b"x" * 1000]), (None, [b"x" * 600, b"x" * 400])):
            call = _Call(declared, chunks)
            await call.through(middleware)
            assert call.status == 200
            assert middleware.budget.held == 0

    asyncio.run(scenario())


def test_a_chunked_body_is_reserved_as_it_grows_and_cut_off_past_the_budget() -> None:
    async def scenario() -> None:
        middleware = _middleware()
        holder, release = _holding(middleware, 1000)
        await asyncio.sleep(0.01)  # it reserves, reads, and waits
        call = _Call(None, [b"x" * 300, b"x" * 300, b"x" * 300])  # 1000 + 600 > 1500
        await call.through(middleware)
        assert call.status == 503 and call.reads == 2
        assert call.error() == ("overloaded", "1")
        assert middleware.budget.held == 1000  # its own 300 given back
        release.set()
        await holder
        assert middleware.budget.held == 0

    asyncio.run(scenario())


def test_no_body_is_never_refused() -> None:
    async def scenario() -> None:
        middleware = _middleware()
        middleware.budget.held = 10 * BUDGET  # as if far over (a request alone may be)
        for declared in (None, 0):
            call = _Call(declared, [b""])
            await call.through(middleware)
            assert call.status == 200

    asyncio.run(scenario())


@pytest.mark.parametrize("ending", ["error", "cancelled"])
def test_the_share_is_given_back_however_the_request_ends(ending: str) -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if ending == "error":
            raise RuntimeError("the app failed")
        await asyncio.sleep(3600)  # until cancelled (the deadline's 408)

    async def scenario() -> None:
        middleware = BodySizeLimit(failing, max_bytes=LIMIT, max_bytes_in_flight=BUDGET)
        for declared in (800, None):
            call = _Call(declared, [b"x" * 800])
            task = asyncio.ensure_future(call.through(middleware))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises((RuntimeError, asyncio.CancelledError)):
                await task
            assert middleware.budget.held == 0

    asyncio.run(scenario())
