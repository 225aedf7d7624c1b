"""Every layer that can refuse a request answers in the shape of the request's protocol.

`/v1` errors are `{"error": {"code", "message", "index"}}`; `/v2` errors are the Open
Inference Protocol's `{"error": "message"}`, which tritonclient prints as its message.
The exception handler (404/405/422), the body limit (413), the API key (401) and the
request timeout (408/504) are each checked on both prefixes, on a real uvicorn server.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi import FastAPI
from tritonclient.utils import InferenceServerException

from service.model_card import ModelCard
from tests.loopback_server import live_server

KEY = "test-key-123"
LIMIT = 64 * 1024
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed_url(make_app_module: Callable[..., FastAPI]) -> Iterator[str]:
    with live_server(make_app_module(api_key=KEY, max_body_bytes=LIMIT)) as url:
        yield url


@pytest.fixture(scope="module")
def hurried_url(make_app_module: Callable[..., FastAPI]) -> Iterator[str]:
    """A server whose every request overruns its deadline (1 µs): for 504 and 408.

    The deadline fires at the loop's first turn after a request starts: any request that
    waits for a worker thread or for more of its body is late, however fast the machine
    (with 1 ms, a fast one sometimes answered in time, and the 504 never came)."""
    with live_server(make_app_module(request_timeout_seconds=0.000001)) as url:
        yield url


@pytest.fixture(scope="module")
def make_app_module(
    make_settings: Callable[..., object], loaded_recognizer: Callable[[str | None], object]
) -> Callable[..., FastAPI]:
    from service.app import create_app
    from service.runtime.recognizer import Recognizer

    def make(**overrides: object) -> FastAPI:
        settings = make_settings(**overrides)
        recognizer = Recognizer(settings)  # type: ignore[arg-type]
        recognizer.load()
        return create_app(settings, recognizer)  # type: ignore[arg-type]

    return make


def assert_shape(response: httpx.Response, status: int, code: str | None) -> str:
    """The status, and the shape its path calls for; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    if response.request.url.path.startswith("/v2"):
        assert isinstance(body["error"], str), body  # flat: no nested object
        return str(body["error"])
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_exception_handler_errors(keyed_url: str, model_card: ModelCard) -> None:
    with httpx.Client(base_url=keyed_url, headers=AUTH) as client:
        assert_shape(client.get("/v1/nowhere"), 404, "not_found")
        assert_shape(client.get("/v2/nowhere"), 404, None)
        infer = f"/v2/models/{model_card.name}/infer"
        assert "not allowed" in assert_shape(client.get(infer), 405, None)
        assert_shape(client.get("/v1/predict"), 405, "method_not_allowed")
        bad = {"content-type": "application/json"}
        assert_shape(client.post("/v1/predict", content=b"{", headers=bad), 422, "invalid_request")
        assert_shape(
            client.post(infer, content=b"{", headers=bad), 400, None
        )  # the protocol says 400


def test_body_limit_errors(keyed_url: str, model_card: ModelCard) -> None:
    body = b"x" * (LIMIT + 1)
    headers = {**AUTH, "content-type": "application/json"}
    with httpx.Client(base_url=keyed_url, headers=headers) as client:
        for path in ("/v1/predict", f"/v2/models/{model_card.name}/infer"):
            message = assert_shape(client.post(path, content=body), 413, "payload_too_large")
            assert f"limit of {LIMIT} bytes" in message


def test_api_key_errors(keyed_url: str, model_card: ModelCard) -> None:
    with httpx.Client(base_url=keyed_url) as client:
        for path in ("/v1/model", "/v2", f"/v2/models/{model_card.name}"):
            message = assert_shape(client.get(path), 401, "unauthorized")
            assert message.startswith("missing API key")


def test_timeout_errors(hurried_url: str, model_card: ModelCard) -> None:
    host, port = hurried_url.removeprefix("http://").split(":")
    infer = f"/v2/models/{model_card.name}/infer"
    # Work in a worker thread, on a body sent in one piece with its head: a body still
    # arriving at the deadline is the client's lateness instead (408, below).
    digits = {"images": [{"data": "iVBORw0KGgo="}] * 64}
    tensor = {"name": "images", "shape": [20, 28, 28, 1], "datatype": "UINT8"}
    v2_body = {"inputs": [{**tensor, "data": [0] * (20 * 28 * 28)}]}
    status, body = _whole_request(host, int(port), "/v1/predict", digits)
    assert status == 504 and json.loads(body)["error"]["code"] == "request_timeout"
    status, body = _whole_request(host, int(port), infer, v2_body)
    assert status == 504 and "did not complete" in json.loads(body)["error"]
    host, port = hurried_url.removeprefix("http://").split(":")
    for path in ("/v1/predict", infer):
        # Headers and part of the body, then silence: the client is what is late.
        status, body = _stalled_upload(host, int(port), path)
        assert status == 408
        error = json.loads(body)["error"]
        if path.startswith("/v2"):
            assert isinstance(error, str) and "not received" in error
        else:
            assert error["code"] == "request_body_timeout"


def test_tritonclient_reads_every_layers_message(
    keyed_url: str, hurried_url: str, model_card: ModelCard
) -> None:
    """tritonclient shows `error` as its message: a string, never a dict's repr."""
    unauthenticated = triton.InferenceServerClient(keyed_url.removeprefix("http://"))
    with pytest.raises(InferenceServerException) as refused:
        unauthenticated.get_model_metadata(model_card.name)
    assert str(refused.value.message()).startswith("missing API key")

    keyed = triton.InferenceServerClient(keyed_url.removeprefix("http://"), verbose=False)
    big = np.zeros((128, 28, 28, 1), dtype=np.float32)  # 400 KB of JSON: over the limit
    tensor = triton.InferInput("images", list(big.shape), "FP32")
    tensor.set_data_from_numpy(big, binary_data=False)
    with pytest.raises(InferenceServerException) as too_large:
        keyed.infer(model_card.name, [tensor], headers=AUTH)
    assert str(too_large.value.message()).startswith("request body is over the limit")

    hurried = triton.InferenceServerClient(hurried_url.removeprefix("http://"))
    small = triton.InferInput("images", [1, 28, 28, 1], "FP32")
    small.set_data_from_numpy(big[:1], binary_data=True)
    with pytest.raises(InferenceServerException) as late:
        hurried.infer(model_card.name, [small])
    assert str(late.value.message()).startswith("the request did not complete")
    for client in (unauthenticated, keyed, hurried):
        client.close()


def _stalled_upload(host: str, port: int, path: str) -> tuple[int, bytes]:
    """Headers and the first byte of a 1000-byte body, then silence."""
    return _send(host, port, path, b"{", declared=1000)


def _whole_request(host: str, port: int, path: str, body: object) -> tuple[int, bytes]:
    """The request line, headers and whole JSON body in one write."""
    return _send(host, port, path, json.dumps(body, separators=(",", ":")).encode())


def _send(host: str, port: int, path: str, body: bytes, declared: int = 0) -> tuple[int, bytes]:
    with socket.create_connection((host, port), timeout=10) as connection:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared or len(body)}\r\n\r\n"
        )
        connection.sendall(head.encode() + body)
        response = b""
        while b"\r\n\r\n" not in response or not _complete(response):
            chunk = connection.recv(65536)
            if not chunk:
                break
            response += chunk
    head_bytes, _, body = response.partition(b"\r\n\r\n")
    return int(head_bytes.split(b" ", 2)[1]), body


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False
