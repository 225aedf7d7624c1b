"""`POST /v1/predict`'s own endpoint (service/api/predict.py) answers every request of the
operation: valid or not, whatever its JSON media type, with the words clients have always
been given (the FastAPI route is declared for the OpenAPI document only)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.schemas import PredictResponse
from service.app import create_app
from service.settings import Settings
from tests.conftest import png_base64
from tests.non_digits import non_digit_pngs

Digits = tuple[np.ndarray, np.ndarray]
JSON = "application/json"
VENDOR_JSON = "application/vnd.digits+json"  # any `+json` type is JSON too


def _post(client: TestClient, body: object, media_type: str) -> tuple[int, dict, bytes]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/v1/predict", content=content, headers={"content-type": media_type})
    return response.status_code, dict(response.headers), response.content


def _valid_requests(digits: Digits) -> list[dict[str, Any]]:
    images = [png_base64(digit) for digit in digits[0][:3]]
    # Pictures of no digit too: with the not-a-digit output, their is_digit is false.
    shapes = [base64.b64encode(png).decode() for png in non_digit_pngs().values()]
    return [
        {"images": [{"data": images[0]}]},
        {"images": [{"data": image, "id": f"n{i}"} for i, image in enumerate(images)]},
        {"images": [{"data": images[1]}], "top_k": 10, "return_preprocessed": True},
        {"images": [{"data": shape} for shape in [images[2], *shapes]]},
        {"images": [{"data": images[0]}, {"data": shapes[0]}], "not_a_digit_threshold": 0.001},
        {"images": [{"data": shapes[1]}], "not_a_digit_threshold": 1},
    ]


@pytest.mark.parametrize("model", ["committed", "ten_outputs"])
def test_valid_requests_are_answered_alike_for_either_json_media_type(
    request: pytest.FixtureRequest, model: str, clear_digits: Digits
) -> None:
    # The committed model, and one without the not-a-digit output (its fields null).
    client: TestClient = request.getfixturevalue(
        "client" if model == "committed" else "ten_output_client"
    )
    for request_body in _valid_requests(clear_digits):
        hot_status, hot_headers, hot_body = _post(client, request_body, JSON)
        route_status, route_headers, route_body = _post(client, request_body, VENDOR_JSON)
        assert hot_status == route_status == 200
        assert hot_body == route_body  # byte for byte
        for name in ("content-type", "content-length", "x-content-type-options"):
            assert hot_headers[name] == route_headers[name]
        # And what both send is what the schema says, serialized as pydantic does.
        assert PredictResponse.model_validate_json(hot_body).model_dump_json().encode() == hot_body


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"images": [', 422, "request body is not valid JSON: Expecting value"),
        (b"", 422, "request body is required (a JSON object)"),
        (b"[]", 422, "request body: Input should be a valid dictionary or object to extract"),
        ({"images": None}, 422, "images: Input should be a valid list"),
        ({"images": []}, 422, "images: List should have at least 1 item"),
        ({"images": [{"data": "QQ=="}], "topk": 3}, 422, "topk: Extra inputs are not permitted"),
        ({"images": [{"data": "QQ=="}], "top_k": "3"}, 422, "top_k: Input should be a valid int"),
        ({"images": [{"data": "QQ=="}], "top_k": 11}, 422, "top_k: Input should be less than"),
        ({"images": [{"data": "QQ=="}], "not_a_digit_threshold": 0}, 422, "not_a_digit_thresh"),
        ({"images": [{"data": "QQ=="}], "not_a_digit_threshold": "0.5"}, 422, "not_a_digit_t"),
        ({"images": [{"data": "QQ==", "id": "x" * 300}]}, 422, "images.0.id: String should"),
        ({"images": [{"data": "QQ=="}] * 300}, 422, "images: at most 256 images per request"),
        (b'{"images": [{"data": "\\ud800"}]}', 422, "images.0.data: Input should be a valid s"),
        (b"[" * 100_000, 422, "images: at most 256 images per request; the body holds more"),
        ("\ufeff{}".encode("utf-16"), 422, "request body: the body is UTF-16-encoded"),
    ],
)
def test_refusals_name_what_is_wrong(
    client: TestClient, body: object, status: int, message: str
) -> None:
    for media_type in (JSON, VENDOR_JSON):
        answer = _post(client, body, media_type)
        assert answer[0] == status
        assert json.loads(answer[2])["error"]["message"].startswith(message), answer[2]


def test_runtime_errors_name_the_image(client: TestClient, clear_digits: Digits) -> None:
    good = png_base64(clear_digits[0][0])
    request = {"images": [{"data": good}, {"data": "bm90IGFuIGltYWdl"}]}  # "not an image"
    status, _, body = _post(client, request, JSON)
    assert status == 422
    assert json.loads(body)["error"]["code"] == "invalid_image"
    assert json.loads(body)["error"]["index"] == 1


def test_other_media_types_and_methods_are_refused(client: TestClient) -> None:
    assert (
        client.post(
            "/v1/predict", content=b"{}", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.get("/v1/predict").status_code == 405


def test_while_loading_it_says_503_with_retry_after(
    make_settings: Callable[..., Settings], held_model_load: threading.Event, clear_digits: Digits
) -> None:
    request = {"images": [{"data": png_base64(clear_digits[0][0])}]}
    with TestClient(create_app(make_settings())) as client:  # loads until released
        status, headers, body = _post(client, request, JSON)
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "model_not_ready"


def test_requests_are_counted_under_their_route(client: TestClient, clear_digits: Digits) -> None:
    _post(client, {"images": [{"data": png_base64(clear_digits[0][0])}]}, JSON)
    metrics = client.get("/metrics").text
    assert (
        'digits_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in metrics
    )
