"""Request limits: one check each, and published where clients read them (`GET /v1/model`,
the `/v2` model metadata), the same figures the server enforces."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.model_card import ModelCard
from service.runtime.limits import Limits, TooManyImagesError
from service.settings import Settings


def test_the_image_count_is_checked_against_the_setting() -> None:
    limits = Limits.of(Settings(max_images=3))
    limits.check_image_count(3)
    with pytest.raises(TooManyImagesError, match="at most 3 images per request, got 4"):
        limits.check_image_count(4)


def test_both_apis_publish_the_limits_they_enforce(
    make_app: Callable[..., FastAPI], model_card: ModelCard
) -> None:
    expected = {"max_images": 3, "max_body_bytes": 65536, "max_pixels": 1_000_000}
    app = make_app(max_images=3, max_body_bytes=65536, max_pixels=1_000_000)
    with TestClient(app) as client:
        assert client.get("/v1/model").json()["limits"] == expected
        metadata = client.get(f"/v2/models/{model_card.name}").json()
        assert metadata["parameters"] == expected
        images = [{"data": "QQ=="}] * 4
        refused = client.post("/v1/predict", json={"images": images})
        assert refused.status_code == 422
        assert refused.json()["error"]["message"] == ("images: at most 3 images per request, got 4")
        tensor = {"name": "images", "datatype": "BYTES", "shape": [4], "data": ["QQ=="] * 4}
        refused = client.post(f"/v2/models/{model_card.name}/infer", json={"inputs": [tensor]})
        assert refused.status_code == 400
        assert refused.json()["error"] == "input 'images': at most 3 images per request, got 4"
