"""Load shedding (`DIGITS_MAX_QUEUED_IMAGES`): 503 `overloaded` with `Retry-After` in each
protocol's shape, before any image is decoded; GETs never shed; each shed counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import service.runtime.recognizer
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


@pytest.fixture
def clear_digits() -> Digits:
    from samples.uploads import load_test_digits

    return load_test_digits(300)


@contextmanager
def _busy(app: FastAPI, images: int) -> Iterator[None]:
    """As if other requests had `images` images in flight."""
    recognizer: Recognizer = app.state.recognizer
    with recognizer.admission.admit(images):
        yield


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many images were decoded (a shed request must decode none)."""
    calls: list[int] = []
    real = service.runtime.recognizer.preprocess_image

    def counted(data: bytes, **options: Any) -> np.ndarray:
        calls.append(1)
        return real(data, **options)

    monkeypatch.setattr(service.runtime.recognizer, "preprocess_image", counted)
    return calls


def _shed_count(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("digits_requests_shed_total "):
            return float(line.split()[1])
    raise AssertionError("no digits_requests_shed_total in /metrics")


def test_a_saturated_worker_sheds_every_prediction_before_reading_it(
    make_app: Callable[..., FastAPI],
    model_card: ModelCard,
    clear_digits: Digits,
    decoded: list[int],
) -> None:
    app = make_app(max_queued_images=64)
    image = png_base64(clear_digits[0][0])
    with TestClient(app) as client, _busy(app, 64):
        v1 = client.post("/v1/predict", json={"images": [{"data": image}]})
        assert v1.status_code == 503
        assert v1.headers["retry-after"] == "1"
        assert v1.json()["error"]["code"] == "overloaded"
        tensor = {"name": "png", "datatype": "BYTES", "shape": [1], "data": [image]}
        v2 = client.post(f"/v2/models/{model_card.name}/infer", json={"inputs": [tensor]})
        assert v2.status_code == 503
        assert v2.headers["retry-after"] == "1"
        assert "busy" in v2.json()["error"]  # the protocol's flat shape
        upload = client.post("/v1/predict/upload", files={"files": ("a.png", b"\x89PNG")})
        assert upload.status_code == 503
        # Health, readiness, metrics, metadata and the repository index are never shed.
        for path in ("/healthz", "/readyz", "/v1/model", "/v2/health/ready"):
            assert client.get(path).status_code == 200, path
        assert client.post("/v2/repository/index", json={}).status_code == 200
        versioned = f"/v2/models/{model_card.name}/versions/{model_card.version}/infer"
        assert client.post(versioned, json={"inputs": [tensor]}).status_code == 503
        assert _shed_count(client) == 4
    assert decoded == []


def test_a_request_that_would_pass_the_bound_is_shed_once_its_images_are_counted(
    make_app: Callable[..., FastAPI], clear_digits: Digits, decoded: list[int]
) -> None:
    app = make_app(max_queued_images=300)
    images = [{"data": png_base64(digit)} for digit in clear_digits[0][:256]]
    with TestClient(app) as client:
        with _busy(app, 100):  # 100 + 256 > 300, though the worker is not saturated
            refused = client.post("/v1/predict", json={"images": images})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "overloaded"
            assert decoded == []
            # A smaller request still fits.
            assert client.post("/v1/predict", json={"images": images[:200]}).status_code == 200
        assert _shed_count(client) == 1
        # Idle again: the large request is taken, and it left nothing counted behind.
        accepted = client.post("/v1/predict", json={"images": images})
        assert accepted.status_code == 200
        # The model's own answers for these digits (not the labels: it may get one wrong).
        expected = app.state.recognizer.classify(clear_digits[0][:256] / np.float32(255))
        answers = [p["digit"] for p in accepted.json()["predictions"]]
        assert answers == expected.argmax(axis=1).tolist()
        assert app.state.recognizer.admission.in_flight == 0


def test_an_idle_worker_takes_a_request_larger_than_the_bound(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    app = make_app(max_queued_images=8)  # below max_images: must not make them impossible
    images = [{"data": png_base64(digit)} for digit in clear_digits[0][:40]]
    with TestClient(app) as client:
        assert client.post("/v1/predict", json={"images": images}).status_code == 200


def test_zero_means_no_bound(make_app: Callable[..., FastAPI], clear_digits: Digits) -> None:
    app = make_app(max_queued_images=0)
    with TestClient(app) as client, _busy(app, 100_000):
        image = png_base64(clear_digits[0][0])
        assert client.post("/v1/predict", json={"images": [{"data": image}]}).status_code == 200


def test_a_503_while_the_model_loads_says_when_to_retry() -> None:
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(model_card="/nonexistent/model.json"))
    with TestClient(app) as client:
        response = client.post("/v1/predict", json={"images": [{"data": "iVBO"}]})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_not_ready"
        assert response.headers["retry-after"] == "1"
