"""The HTTP API with the committed model: predictions, their shape, formats, both artifacts."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from service.api.schemas import PredictResponse
from service.model_card import ModelCard
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


def _predict(client: TestClient, images: list[dict[str, str]], **fields: object) -> dict:
    response = client.post("/v1/predict", json={"images": images, **fields})
    assert response.status_code == 200, response.text
    PredictResponse.model_validate(response.json())
    return response.json()


def _rest(prediction: dict) -> float:
    """What the ten digits' probabilities sum to: 1, less `not_a_digit` if the model has it."""
    return 1 - (prediction["not_a_digit"] or 0)


def test_single_image(client: TestClient, clear_digits: Digits, model_card: ModelCard) -> None:
    images, labels = clear_digits
    body = _predict(client, [{"data": png_base64(images[0])}])

    assert body["model"] == {"name": model_card.name, "version": model_card.version}
    (prediction,) = body["predictions"]
    assert prediction["id"] is None  # present, null: the client sent no id
    assert "preprocessed" not in prediction  # absent: not asked for
    assert prediction["digit"] == labels[0]
    assert prediction["confidence"] == pytest.approx(max(prediction["probabilities"]))
    assert len(prediction["probabilities"]) == 10
    # Each digit's probability: with the not-a-digit output, they share what it leaves.
    assert sum(prediction["probabilities"]) == pytest.approx(_rest(prediction), abs=1e-9)
    assert prediction["is_digit"] is True
    assert len(prediction["top_k"]) == 3
    assert prediction["top_k"][0] == {"digit": labels[0], "probability": prediction["confidence"]}
    top = [item["probability"] for item in prediction["top_k"]]
    assert top == sorted(top, reverse=True)
    assert top == sorted(prediction["probabilities"], reverse=True)[:3]


def test_batch_keeps_order_and_echoes_ids(client: TestClient, clear_digits: Digits) -> None:
    images, labels = clear_digits
    request = [{"data": png_base64(image), "id": f"img-{i}"} for i, image in enumerate(images)]
    request[3].pop("id")

    predictions = _predict(client, request)["predictions"]

    assert [p["id"] for p in predictions] == [item.get("id") for item in request]
    assert [p["digit"] for p in predictions] == labels.tolist()


def test_batch_answers_like_single_images(client: TestClient, clear_digits: Digits) -> None:
    images, _ = clear_digits
    encoded = [{"data": png_base64(image)} for image in images[:20]]
    batch = _predict(client, encoded)["predictions"]
    singles = [_predict(client, [item])["predictions"][0] for item in encoded]
    for together, alone in zip(batch, singles, strict=True):
        assert together["digit"] == alone["digit"]
        np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=1e-5)


@pytest.mark.parametrize("top_k", [1, 5, 10])
def test_top_k(client: TestClient, clear_digits: Digits, top_k: int) -> None:
    images, _ = clear_digits
    (prediction,) = _predict(client, [{"data": png_base64(images[1])}], top_k=top_k)["predictions"]
    digits = [item["digit"] for item in prediction["top_k"]]
    assert len(digits) == len(set(digits)) == top_k
    assert digits[0] == prediction["digit"]
    assert [item["probability"] for item in prediction["top_k"]] == [
        prediction["probabilities"][d] for d in digits
    ]


def test_return_preprocessed_gives_the_28x28_image_the_model_saw(
    client: TestClient, clear_digits: Digits
) -> None:
    images, _ = clear_digits
    big = Image.fromarray(255 - images[2]).resize((140, 140))  # dark ink on white, 5×
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    request = [
        {"data": png_base64(images[2]), "id": "mnist"},
        {"data": base64.b64encode(buffer.getvalue()).decode(), "id": "paper"},
    ]

    predictions = _predict(client, request, return_preprocessed=True)["predictions"]

    seen = [Image.open(io.BytesIO(base64.b64decode(p["preprocessed"]))) for p in predictions]
    assert all(image.format == "PNG" and image.size == (28, 28) for image in seen)
    # An MNIST-ready digit goes to the model untouched.
    np.testing.assert_array_equal(np.asarray(seen[0].convert("L")), images[2])
    # A photo of the same digit ends up as white on black, like MNIST.
    paper = np.asarray(seen[1].convert("L"))
    assert paper[0, 0] == 0 and paper.max() == 255


def test_data_url_is_accepted(client: TestClient, clear_digits: Digits) -> None:
    images, labels = clear_digits
    url = "data:image/png;base64," + png_base64(images[0])
    assert _predict(client, [{"data": url}])["predictions"][0]["digit"] == labels[0]


def _upload(image: Image.Image, format: str, **options: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _variants(digit: np.ndarray) -> dict[str, str]:
    """The same digit as clients send it: many formats, modes and polarities."""
    white_on_black = Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)
    ink_on_paper = Image.fromarray(255 - np.asarray(white_on_black))
    rgb = ink_on_paper.convert("RGB")
    transparent = Image.new("RGBA", white_on_black.size, (20, 20, 20, 0))
    transparent.putalpha(white_on_black)  # strokes on a transparent canvas
    grey_alpha = ink_on_paper.convert("LA")
    sixteen = Image.fromarray(np.asarray(ink_on_paper).astype(np.uint16) * 257)
    return {
        "png-L": _upload(ink_on_paper, "PNG"),
        "png-L-28x28-white-on-black": _upload(Image.fromarray(digit), "PNG"),
        "png-LA": _upload(grey_alpha, "PNG"),
        "png-P": _upload(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "png-RGB": _upload(rgb, "PNG"),
        "png-RGBA-transparent-canvas": _upload(transparent, "PNG"),
        "png-1-bilevel": _upload(ink_on_paper.point(lambda v: 255 if v > 128 else 0, "1"), "PNG"),
        "png-I16": _upload(sixteen, "PNG"),
        "jpeg-L": _upload(ink_on_paper, "JPEG", quality=85),
        "jpeg-RGB": _upload(rgb, "JPEG", quality=85),
        "jpeg-CMYK": _upload(rgb.convert("CMYK"), "JPEG", quality=90),
        "gif-P": _upload(rgb.convert("P"), "GIF"),
        "bmp-RGB": _upload(rgb, "BMP"),
        "bmp-L": _upload(ink_on_paper, "BMP"),
        "webp-RGB": _upload(rgb, "WEBP", quality=90),
        "webp-RGBA": _upload(transparent, "WEBP", lossless=True),
        "tiff-L": _upload(ink_on_paper, "TIFF"),
        "tiff-RGB": _upload(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-CMYK": _upload(rgb.convert("CMYK"), "TIFF"),
        "tiff-I16": _upload(sixteen, "TIFF"),
        "tiff-F": _upload(Image.fromarray(np.asarray(ink_on_paper, np.float32) / 255), "TIFF"),
    }


def test_image_formats_and_modes(client: TestClient, clear_digits: Digits) -> None:
    images, labels = clear_digits
    for digit, label in zip(images[:3], labels[:3], strict=True):
        variants = _variants(digit)
        request = [{"data": data, "id": name} for name, data in variants.items()]
        predictions = _predict(client, request)["predictions"]
        wrong = {p["id"]: p["digit"] for p in predictions if p["digit"] != label}
        assert not wrong, f"expected {label} for every variant, got {wrong}"


@pytest.mark.parametrize("model_file", ["mnist_cnn_dynamic.tflite", "mnist_cnn_int8.tflite"])
def test_each_tflite_artifact_serves(
    make_app: Callable[..., FastAPI],
    tflite_files: list[str],
    model_card: ModelCard,
    clear_digits: Digits,
    model_file: str,
) -> None:
    """Float32-input (dynamic range) and int8-input (full integer) models both work."""
    assert model_file in tflite_files
    images, labels = clear_digits
    with TestClient(make_app(model_file=model_file)) as client:
        served = client.get("/v1/model").json()["served"]
        body = _predict(client, [{"data": png_base64(image)} for image in images])

    assert served["artifact"]["file"] == model_file
    assert model_card.artifacts[served["key"]].file == model_file
    predictions = body["predictions"]
    assert [p["digit"] for p in predictions] == labels.tolist()
    for prediction in predictions:
        assert sum(prediction["probabilities"]) == pytest.approx(_rest(prediction), abs=1e-9)
        assert min(prediction["probabilities"]) >= 0


def test_both_artifacts_are_int8_and_float_inputs(model_card: ModelCard) -> None:
    """The parametrized test above covers both input kinds only if the card has both."""
    dtypes = {a.input.dtype for a in model_card.artifacts.values() if a.input is not None}
    assert {"float32", "int8"} <= dtypes


def test_model_endpoint_returns_card_and_served_artifact(
    client: TestClient, model_card: ModelCard
) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert ModelCard.model_validate(body["card"]) == model_card
    assert body["served"]["key"] == model_card.serving_default
    assert body["served"]["artifact"] == model_card.artifacts[
        model_card.serving_default
    ].model_dump(mode="json")


def test_health_and_readiness_when_loaded(client: TestClient, model_card: ModelCard) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["model"] == {"name": model_card.name, "version": model_card.version}


def test_openapi_documents_the_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/v1/predict"]["post"]
    for status in ("413", "415", "422", "500", "503"):
        content = predict["responses"][status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/ErrorResponse")
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictRequest"
    )
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_web_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert "v1/predict" in script.text
    missing = client.get("/static/no-such-file.css")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
