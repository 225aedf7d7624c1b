"""`POST /v1/predict`'s hot path (service/api/hot_path.py) answers exactly as the route does.

The same request is sent twice: as `application/json`, which the hot path takes, and as
`application/vnd.digits+json`, which it hands to the FastAPI route (a media type the
route accepts). The route's own answers are counted, so each test knows which one spoke.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import Response
from fastapi.testclient import TestClient

from service.api import routes
from service.api.schemas import PredictResponse
from service.app import create_app
from service.settings import Settings
from tests.conftest import png_base64
from tests.non_digits import non_digit_pngs

Digits = tuple[np.ndarray, np.ndarray]
HOT = "application/json"
ROUTE = "application/vnd.digits+json"


@pytest.fixture
def route_answers(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the FastAPI route answered with (not the hot path's)."""
    answered: list[bytes] = []
    real = routes.json_response

    def counted(content: bytes, *args: Any, **kwargs: Any) -> Response:
        answered.append(content)
        return real(content, *args, **kwargs)

    monkeypatch.setattr(routes, "json_response", counted)
    return answered


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
def test_valid_requests_are_answered_by_the_hot_path_as_by_the_route(
    request: pytest.FixtureRequest, model: str, clear_digits: Digits, route_answers: list[bytes]
) -> None:
    # The committed model, and one without the not-a-digit output (its fields null).
    client: TestClient = request.getfixturevalue(
        "client" if model == "committed" else "ten_output_client"
    )
    for request_body in _valid_requests(clear_digits):
        hot_status, hot_headers, hot_body = _post(client, request_body, HOT)
        assert route_answers == []  # the route never saw it
        route_status, route_headers, route_body = _post(client, request_body, ROUTE)
        assert route_answers == [route_body]
        route_answers.clear()
        assert hot_status == route_status == 200
        assert hot_body == route_body  # byte for byte
        for name in ("content-type", "content-length", "x-content-type-options"):
            assert hot_headers[name] == route_headers[name]
        # And what both send is what the schema says, serialized as pydantic does.
        assert PredictResponse.model_validate_json(hot_body).model_dump_json().encode() == hot_body


@pytest.mark.parametrize(
    "body",
    [
        b'{"images": [',  # not JSON
        {"images": []},  # too few
        {"images": [{"data": "QQ=="}], "topk": 3},  # unknown field
        {"images": [{"data": "QQ=="}], "top_k": "3"},  # strict types
        {"images": [{"data": "QQ=="}], "top_k": 11},
        {"images": [{"data": "QQ=="}], "not_a_digit_threshold": 0},
        {"images": [{"data": "QQ=="}], "not_a_digit_threshold": 1.01},
        {"images": [{"data": "QQ=="}], "not_a_digit_threshold": "0.5"},
        {"images": [{"data": "QQ==", "id": "x" * 300}]},
        {"images": [{"data": "QQ=="}] * 300},  # over max_images
        b"[" * 100_000,  # more values than any valid request
        "\ufeff{}".encode("utf-16"),
    ],
)
def test_requests_the_route_refuses_are_handed_to_it(
    client: TestClient, route_answers: list[bytes], body: object
) -> None:
    hot = _post(client, body, HOT)
    route = _post(client, body, ROUTE)
    assert hot[0] == route[0] and hot[0] in (413, 422)
    assert hot[2] == route[2]  # the same error, from the same place


def test_runtime_errors_are_shaped_like_the_routes(
    client: TestClient, clear_digits: Digits, route_answers: list[bytes]
) -> None:
    good = png_base64(clear_digits[0][0])
    request = {"images": [{"data": good}, {"data": "bm90IGFuIGltYWdl"}]}  # "not an image"
    hot = _post(client, request, HOT)
    route = _post(client, request, ROUTE)
    assert hot[0] == route[0] == 422
    assert json.loads(hot[2]) == json.loads(route[2])
    assert json.loads(hot[2])["error"]["index"] == 1


def test_other_media_types_and_methods_go_to_the_route(client: TestClient) -> None:
    assert (
        client.post(
            "/v1/predict", content=b"{}", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.get("/v1/predict").status_code == 405


def test_while_loading_the_hot_path_says_503_with_retry_after(
    make_settings: Callable[..., Settings], held_model_load: threading.Event, clear_digits: Digits
) -> None:
    request = {"images": [{"data": png_base64(clear_digits[0][0])}]}
    with TestClient(create_app(make_settings())) as client:  # loads until released
        status, headers, body = _post(client, request, HOT)
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "model_not_ready"


def test_hot_path_requests_are_counted_under_their_route(
    client: TestClient, clear_digits: Digits
) -> None:
    _post(client, {"images": [{"data": png_base64(clear_digits[0][0])}]}, HOT)
    metrics = client.get("/metrics").text
    assert (
        'digits_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in metrics
    )
