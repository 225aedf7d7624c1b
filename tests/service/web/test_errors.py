"""Every kind of bad request gets the one error shape, the right status and code, never a 500."""

from __future__ import annotations

import asyncio
import base64
import io
import math
import struct
import zlib
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from starlette.types import Message

from service.middleware.body_limit import LINGER_LIMIT_MULTIPLE
from service.runtime.interpreter import LiteRTModel
from service.web.errors import RETRY_AFTER_SECONDS, ErrorResponse, error_response_for
from tests.asgi import http_scope
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


def _error(response: httpx.Response, status: int, code: str, index: int | None = None) -> str:
    """Assert the error shape, status, code and index; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    ErrorResponse.model_validate(body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "index"}
    assert body["error"]["code"] == code
    assert body["error"]["index"] == index
    assert body["error"]["message"]
    return str(body["error"]["message"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height`, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _bad_images(good: bytes) -> dict[str, tuple[str, str]]:
    """name → (the `data` string, the expected error code)."""
    return {
        "not base64": ("@@@ not base64 @@@", "invalid_image"),
        "base64 of text": (_b64(b"hello, I am not an image"), "invalid_image"),
        "truncated png": (_b64(good[: len(good) // 2]), "invalid_image"),
        "zero-size png": (_b64(_png_with_header(0, 0)), "invalid_image"),
        "blank image": (_b64(_png(Image.new("L", (64, 64), 255))), "invalid_image"),
        "bad data url": ("data:image/png,notbase64", "invalid_image"),
        "decompression bomb": (_b64(_png(Image.new("1", (12_000, 12_000)))), "image_too_large"),
    }


# Pillow warns before our own limit answers; the warning is expected here.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "name",
    [
        "not base64",
        "base64 of text",
        "truncated png",
        "zero-size png",
        "blank image",
        "bad data url",
        "decompression bomb",
    ],
)
def test_bad_image_is_422_naming_its_index(
    client: TestClient, clear_digits: Digits, name: str
) -> None:
    good = png_base64(clear_digits[0][0])
    data, code = _bad_images(base64.b64decode(good))[name]
    images = [{"data": good}, {"data": good}, {"data": good}, {"data": data}, {"data": good}]
    _error(client.post("/v1/predict", json={"images": images}), 422, code, index=3)


def test_pixel_limit_comes_from_settings(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    small = png_base64(clear_digits[0][0])
    large = _b64(_png(Image.fromarray(clear_digits[0][0]).resize((200, 200))))
    with TestClient(make_app(max_pixels=100 * 100)) as client:
        assert client.post("/v1/predict", json={"images": [{"data": small}]}).status_code == 200
        response = client.post("/v1/predict", json={"images": [{"data": small}, {"data": large}]})
    # 200×200 is far below the default limit: only the setting can reject it.
    _error(response, 422, "image_too_large", index=1)


def test_image_count_limits(make_app: Callable[..., FastAPI], clear_digits: Digits) -> None:
    image = {"data": png_base64(clear_digits[0][0])}
    with TestClient(make_app(max_images=3)) as client:
        _error(client.post("/v1/predict", json={"images": []}), 422, "invalid_request")
        assert client.post("/v1/predict", json={"images": [image] * 3}).status_code == 200
        response = client.post("/v1/predict", json={"images": [image] * 4})
    assert "at most 3" in _error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("body", "location", "index"),
    [
        (
            {"images": [{"data": "x"}, {"data": "x"}, {"data": "x"}, {"id": "no data"}]},
            "images.3.data",
            3,
        ),
        ({"images": [{"data": 7}]}, "images.0.data", 0),
        ({"images": [{"data": ""}]}, "images.0.data", 0),
        ({"images": [{"data": "x", "extra": 1}]}, "images.0.extra", 0),
        ({"images": "not a list"}, "images", None),
        ({}, "images", None),
        ({"images": [{"data": "x"}], "top_k": 0}, "top_k", None),
        ({"images": [{"data": "x"}], "top_k": 11}, "top_k", None),
        ({"images": [{"data": "x"}], "topk": 3}, "topk", None),
        ([1, 2, 3], "request body", None),
    ],
)
def test_schema_violations_name_the_field(
    client: TestClient, body: object, location: str, index: int | None
) -> None:
    message = _error(client.post("/v1/predict", json=body), 422, "invalid_request", index)
    assert message.startswith(location + ":")


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000]
)
def test_body_that_is_not_json_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/predict", content=content, headers={"content-type": "application/json"}
    )
    _error(response, 422, "invalid_request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/predict", content=b'{"images": []}', headers=headers)
    _error(response, 415, "unsupported_media_type")


def test_multipart_upload_is_415(client: TestClient) -> None:
    response = client.post("/v1/predict", files={"file": ("digit.png", b"\x89PNG", "image/png")})
    _error(response, 415, "unsupported_media_type")


def test_declared_body_over_the_limit_is_413(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(max_body_bytes=4096)) as client:
        response = client.post(
            "/v1/predict", content=b"x" * 5000, headers={"content-type": "application/json"}
        )
    _error(response, 413, "payload_too_large")


def test_streamed_body_over_the_limit_is_413_without_reading_it_all(
    make_app: Callable[..., FastAPI],
) -> None:
    """A chunked body (no Content-Length) is counted as it arrives and refused as soon as it
    passes the limit; the rest is drained (lingering close) only up to a bound."""
    app = make_app(max_body_bytes=4096)
    chunks_read = 0
    sent: list[Message] = []
    read_when_answered: list[int] = []

    async def receive() -> Message:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": chunks_read < 1000}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            read_when_answered.append(chunks_read)
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    scope = http_scope("POST", "/v1/predict", headers)
    asyncio.run(app(scope, receive, send))

    assert read_when_answered == [5]  # the fifth chunk crossed 4096 bytes: answered at once
    # Then drained and discarded up to twice the limit, never the other ~990 chunks.
    assert chunks_read == math.ceil(LINGER_LIMIT_MULTIPLE * 4096 / 1000)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert ErrorResponse.model_validate_json(body).error.code == "payload_too_large"


def test_unknown_route_is_404_and_wrong_method_405(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    _error(client.post("/nothing", json={}), 404, "not_found")
    response = client.get("/v1/predict")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_unexpected_server_error_is_500_with_a_generic_message(
    make_app: Callable[..., FastAPI],
    clear_digits: Digits,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: LiteRTModel, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(LiteRTModel, "predict", broken)
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/predict", json={"images": [{"data": png_base64(clear_digits[0][0])}]}
        )
    message = _error(response, 500, "internal_error")
    assert "secret" not in message
    assert "secret internal detail" in caplog.text  # logged for the operator


def test_every_503_says_when_to_retry_and_a_given_retry_after_wins() -> None:
    for path in ("/v1/predict", "/v2/models/digits/infer", "/v1/model"):
        response = error_response_for(http_scope("GET", path), 503, "overloaded", "busy")
        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    given = error_response_for(
        http_scope("POST", "/v1/predict"), 503, "draining", "later", headers={"Retry-After": "7"}
    )
    assert given.headers.getlist("retry-after") == ["7"]
    refused = error_response_for(http_scope("POST", "/v1/predict"), 422, "invalid", "no")
    assert "retry-after" not in refused.headers
