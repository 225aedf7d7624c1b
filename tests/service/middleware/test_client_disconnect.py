"""A request whose client hangs up after sending its body is abandoned at once (its task
cancelled, so the runtime stops its threads) and recorded as 499, never as a 500."""

from __future__ import annotations

import asyncio
import time

from starlette.types import Message, Receive, Scope, Send

from service.middleware.request_timeout import RequestTimeout

SCOPE: Scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": []}


def _run(hang_up_after: float | None) -> tuple[list[Message], list[str], float]:
    events: list[str] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        try:
            await asyncio.sleep(1.0)  # the work; cancellable, like the runtime's awaits
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def main() -> float:
        body_sent = False
        response_done = asyncio.Event()

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"{}", "more_body": False}
            # Like uvicorn: after the body, a receive ends with the disconnect, or with
            # the response complete.
            if hang_up_after is None:
                await response_done.wait()
            else:
                await asyncio.sleep(hang_up_after)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                response_done.set()

        began = time.perf_counter()
        await RequestTimeout(app, seconds=30)(SCOPE, receive, send)
        elapsed = time.perf_counter() - began
        await asyncio.sleep(0)  # let the cancelled task run its handler
        return elapsed

    elapsed = asyncio.run(main())
    return sent, events, elapsed


def test_a_client_that_hangs_up_abandons_its_request() -> None:
    sent, events, elapsed = _run(hang_up_after=0.05)
    assert elapsed < 0.5  # not the second the work would have taken
    assert events == ["cancelled"]
    assert sent[0]["status"] == 499  # for the metrics and the access log; nobody reads it


def test_a_client_that_waits_gets_its_answer() -> None:
    sent, events, _ = _run(hang_up_after=None)
    assert events == []
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"done"
