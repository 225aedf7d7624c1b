"""The reference app answers `/v1/predict` with the service's own schemas."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bench.images import digits_body, mnist_pngs
from bench.reference_app import app
from service.api.schemas import PredictResponse


def test_answers_a_valid_prediction_per_image_in_order() -> None:
    client = TestClient(app)
    body = {"images": [{"data": "aGVsbG8=", "id": "a"}, {"data": "aGVsbG8="}], "top_k": 2}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200
    parsed = PredictResponse.model_validate(response.json())
    assert [p.id for p in parsed.predictions] == ["a", None]
    assert all(len(p.top_k) == 2 and len(p.probabilities) == 10 for p in parsed.predictions)
    assert client.get("/readyz").status_code == 200


def test_validates_requests_as_the_service_does() -> None:
    client = TestClient(app)
    # The benchmark's own request body is accepted...
    json = {"content-type": "application/json"}
    ok = client.post("/v1/predict", content=digits_body(mnist_pngs(1)), headers=json)
    assert ok.status_code == 200
    # ...and the schema's rules apply: no images, a misspelt field, top_k out of range.
    refused: list[dict[str, object]] = [
        {"images": []},
        {"images": [{"data": "x"}], "topk": 1},
        {"images": [{"data": "x"}], "top_k": 11},
    ]
    for bad in refused:
        assert client.post("/v1/predict", json=bad).status_code == 422
