"""`DIGITS_REQUEST_TIMEOUT_SECONDS`: 504 for work that overruns, 408 for a stalled body,
never a response cut short once it has started."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from samples.uploads import load_test_digits, make_upload
from service.middleware.request_timeout import RequestTimeout
from tests.asgi import http_scope

DEADLINE = 0.5


async def _slow(request: Request) -> Response:
    await run_in_threadpool(time.sleep, 3)  # like inference: a thread that cannot be stopped
    return JSONResponse({"done": True})


async def _fast(request: Request) -> Response:
    return JSONResponse({"done": True})


async def _streams_slowly(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"chunk;"
            await asyncio.sleep(DEADLINE / 2)

    return StreamingResponse(chunks())


def _wrapped() -> RequestTimeout:
    app = Starlette(
        routes=[
            Route("/slow", _slow),
            Route("/fast", _fast),
            Route("/stream", _streams_slowly),
            Route("/echo", _fast, methods=["POST"]),
        ]
    )
    return RequestTimeout(app, seconds=DEADLINE)


def test_fast_requests_pass_through() -> None:
    with TestClient(_wrapped()) as client:
        assert client.get("/fast").json() == {"done": True}


def test_overrunning_work_gets_504_on_time() -> None:
    with TestClient(_wrapped()) as client:
        response = client.get("/slow")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "request_timeout"
    assert response.headers["connection"] == "close"


def test_the_504_goes_out_on_time_whatever_the_work_is_stuck_in() -> None:
    # The test client returns only once the app has, so this one watches `send`.
    sent: list[tuple[float, Message]] = []

    async def request() -> None:
        async def receive() -> Message:
            await asyncio.sleep(60)  # no disconnect: the client waits for its answer
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append((time.monotonic(), message))

        async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
            await run_in_threadpool(time.sleep, 3)  # a thread that is not abandoned

        await RequestTimeout(stuck, seconds=DEADLINE)(http_scope("GET", "/echo"), receive, send)

    started = time.monotonic()
    asyncio.run(request())
    (answered, start), (_, body) = sent
    assert start["status"] == 504 and not body.get("more_body")
    assert answered - started < DEADLINE + 1  # not the 3 s the thread took


def test_a_started_response_is_not_cut_short() -> None:
    with TestClient(_wrapped()) as client:
        response = client.get("/stream")  # takes 2× the deadline in all
    assert response.status_code == 200
    assert response.content == b"chunk;" * 4


def test_a_stalled_body_gets_408() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        if not sent:
            sent.append({"type": "http.request", "body": b"{", "more_body": True})
            return sent[-1]
        await asyncio.sleep(60)  # the client never sends the rest
        return {"type": "http.disconnect"}

    responses: list[Message] = []

    async def send(message: Message) -> None:
        responses.append(message)

    async def request() -> None:
        scope = http_scope("POST", "/echo", [(b"content-type", b"application/json")])

        async def echo(scope: Scope, receive: Receive, send: Send) -> None:
            await Request(scope, receive).body()  # waits for the whole body
            await JSONResponse({})(scope, receive, send)

        await RequestTimeout(echo, seconds=DEADLINE)(scope, receive, send)

    asyncio.run(asyncio.wait_for(request(), timeout=10))
    assert responses[0]["status"] == 408
    assert json.loads(responses[1]["body"])["error"]["code"] == "request_body_timeout"


def test_the_service_enforces_its_setting(make_app: Callable[..., FastAPI]) -> None:
    images, _ = load_test_digits(64)
    rng = np.random.default_rng(0)
    uploads = [base64.b64encode(make_upload(d, "paper_png_rgb", rng)).decode() for d in images]
    body = {"images": [{"data": upload} for upload in uploads]}
    with TestClient(make_app(request_timeout_seconds=0.01)) as client:
        response = client.post("/v1/predict", json=body)
        assert response.status_code == 504, response.text
        assert "0.01 s" in response.json()["error"]["message"]
    with TestClient(make_app()) as client:
        assert client.post("/v1/predict", json=body).status_code == 200
