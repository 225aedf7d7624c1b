"""POST /v1/predict/upload: multipart files, the same answers and limits as /v1/predict."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from samples.uploads import encode_jpeg, encode_png, paper_photo
from service.api.schemas import PredictResponse

Digits = tuple[np.ndarray, np.ndarray]
UPLOAD = "/v1/predict/upload"


def _files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in named]


def test_files_are_predicted_in_order_named_by_file(
    client: TestClient, clear_digits: Digits
) -> None:
    images, labels = clear_digits
    rng = np.random.default_rng(5)
    uploads = [(f"digit-{i}.png", encode_png(image)) for i, image in enumerate(images[:4])]
    uploads.append(("photo.jpg", encode_jpeg(paper_photo(images[4], rng), quality=85)))

    response = client.post(UPLOAD, files=_files(*uploads), data={"top_k": "2"})

    assert response.status_code == 200, response.text
    body = PredictResponse.model_validate(response.json())
    assert [p.id for p in body.predictions] == [name for name, _ in uploads]
    assert [p.digit for p in body.predictions] == labels[:5].tolist()
    assert all(len(p.top_k) == 2 for p in body.predictions)


def test_same_answer_as_json_predict(client: TestClient, clear_digits: Digits) -> None:
    images, _ = clear_digits
    png = encode_png(images[0])
    upload = client.post(UPLOAD, files=_files(("a.png", png)), data={"return_preprocessed": "true"})
    request = {"images": [{"id": "a.png", "data": base64.b64encode(png).decode()}]}
    json_body = client.post("/v1/predict", json={**request, "return_preprocessed": True})
    assert upload.status_code == json_body.status_code == 200
    assert upload.json() == json_body.json()


def test_bad_file_is_422_naming_it(client: TestClient, clear_digits: Digits) -> None:
    images, _ = clear_digits
    good = encode_png(images[0])
    for bad, message in [(b"not an image", "not a recognised image"), (b"", "is empty")]:
        response = client.post(UPLOAD, files=_files(("good.png", good), ("bad.png", bad)))
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["index"] == 1 and message in error["message"]


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        ({"data": {"top_k": "3"}, "files": None}, 415, "multipart/form-data"),
        ({"json": {"images": []}}, 415, "got application/json"),
        ({"data": {"top_k": "0"}, "files": [("file", ("a.png", b"x", "image/png"))]}, 422, "top_k"),
        ({"files": [("other", ("a.png", b"x", "image/png"))]}, 422, "file: Field required"),
    ],
)
def test_bad_requests(client: TestClient, send: dict, status: int, message: str) -> None:
    response = client.post(UPLOAD, **send)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_limits_apply(make_app: Callable[..., FastAPI], clear_digits: Digits) -> None:
    images, _ = clear_digits
    png = encode_png(images[0])
    with TestClient(make_app(max_images=2, max_body_bytes=8192, max_pixels=10_000)) as client:
        many = client.post(UPLOAD, files=_files(*[(f"{i}.png", png) for i in range(3)]))
        assert many.status_code == 422 and "at most 2 images" in many.json()["error"]["message"]

        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        large = client.post(UPLOAD, files=_files(("big.png", encode_png(noise) * 4)))
        assert large.status_code == 413

        wide = Image.new("L", (200, 100))  # 20,000 pixels; compresses to almost nothing
        buffer = io.BytesIO()
        wide.save(buffer, format="PNG")
        too_many_pixels = client.post(UPLOAD, files=_files(("wide.png", buffer.getvalue())))
        assert too_many_pixels.status_code == 422
        assert too_many_pixels.json()["error"]["code"] == "image_too_large"
