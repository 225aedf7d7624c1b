"""`is_digit` and `not_a_digit` on `/v1`: the JSON route and uploads, the threshold (the
setting and a request's own), and a model without the output (the 10-output card kept in
tests/fixtures), which answers as it always did."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from samples.uploads import encode_png
from service.model_card import DEFAULT_NOT_A_DIGIT_THRESHOLD, ModelCard
from service.settings import Settings
from tests.non_digits import non_digit_pngs

Digits = tuple[np.ndarray, np.ndarray]
UPLOAD = "/v1/predict/upload"


def _predict(client: TestClient, pngs: list[bytes], **fields: Any) -> list[dict[str, Any]]:
    images = [{"data": base64.b64encode(png).decode()} for png in pngs]
    response = client.post("/v1/predict", json={"images": images, **fields})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def _upload(client: TestClient, pngs: list[bytes], **fields: str) -> list[dict[str, Any]]:
    files = [("file", (f"{n}.png", png, "image/png")) for n, png in enumerate(pngs)]
    response = client.post(UPLOAD, files=files, data=fields)
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def _least_sure_digit(client: TestClient, digits: Digits) -> tuple[bytes, float]:
    """A clear digit's PNG and its not-a-digit probability, the highest of them: above 0, so
    that a threshold can be put at it (thresholds are > 0)."""
    pngs = [encode_png(image) for image in digits[0][:10]]
    scores = [p["not_a_digit"] for p in _predict(client, pngs)]
    best = int(np.argmax(scores))
    assert 0 < scores[best] < DEFAULT_NOT_A_DIGIT_THRESHOLD
    return pngs[best], scores[best]


def _without(prediction: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in prediction.items() if key not in names}


def test_each_prediction_says_whether_the_image_is_a_digit(
    client: TestClient,
    not_a_digit_card: ModelCard,
    clear_digits: Digits,
    non_digits: dict[str, bytes],
) -> None:
    images, labels = clear_digits
    digits = [encode_png(image) for image in images[:5]]
    predictions = _predict(client, digits + list(non_digits.values()), top_k=10)

    for prediction in predictions:
        not_a_digit = prediction["not_a_digit"]
        assert isinstance(not_a_digit, float) and 0 <= not_a_digit <= 1
        assert prediction["is_digit"] is (not_a_digit < DEFAULT_NOT_A_DIGIT_THRESHOLD)
        # The ten keep their meaning, each digit's probability: not renormalized.
        probabilities = prediction["probabilities"]
        assert math.isclose(sum(probabilities) + not_a_digit, 1, abs_tol=1e-6)
        assert prediction["confidence"] == probabilities[prediction["digit"]] == max(probabilities)
        assert prediction["top_k"][0] == {
            "digit": prediction["digit"],
            "probability": prediction["confidence"],
        }
    for prediction, label in zip(predictions[:5], labels[:5], strict=True):
        assert prediction["is_digit"] is True and prediction["digit"] == label
    for prediction in predictions[5:]:
        assert prediction["is_digit"] is False
        # Low, as the field says: the digits share what not-a-digit left.
        assert prediction["confidence"] <= 1 - prediction["not_a_digit"] + 1e-9 < 0.2


def test_a_request_chooses_its_own_threshold(
    client: TestClient, not_a_digit_card: ModelCard, clear_digits: Digits
) -> None:
    png, not_a_digit = _least_sure_digit(client, clear_digits)
    (default,) = _predict(client, [png])
    (at,) = _predict(client, [png], not_a_digit_threshold=not_a_digit)
    (above,) = _predict(client, [png], not_a_digit_threshold=float(np.nextafter(not_a_digit, 1)))
    # "At least the threshold" is not a digit; nothing else in the answer changes.
    assert (default["is_digit"], at["is_digit"], above["is_digit"]) == (True, False, True)
    assert _without(at, "is_digit") == _without(default, "is_digit") == _without(above, "is_digit")
    (everything,) = _predict(client, [png], not_a_digit_threshold=1)  # an integer is a number
    assert everything["is_digit"] is True


def test_the_setting_is_the_default_threshold(
    make_app: Callable[..., FastAPI], not_a_digit_card: ModelCard, clear_digits: Digits
) -> None:
    with TestClient(make_app()) as client:
        png, not_a_digit = _least_sure_digit(client, clear_digits)
        (default,) = _predict(client, [png])
    with TestClient(make_app(not_a_digit_threshold=not_a_digit)) as strict:
        (refused,) = _predict(strict, [png])
        # A request's own threshold still wins over the setting.
        (chosen,) = _predict(strict, [png], not_a_digit_threshold=0.5)
    assert (default["is_digit"], refused["is_digit"], chosen["is_digit"]) == (True, False, True)
    assert refused["not_a_digit"] == default["not_a_digit"]


def test_the_setting_is_read_from_its_variable_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().not_a_digit_threshold == DEFAULT_NOT_A_DIGIT_THRESHOLD
    monkeypatch.setenv("DIGITS_NOT_A_DIGIT_THRESHOLD", "0.7")
    assert Settings().not_a_digit_threshold == 0.7
    for bad in ("0", "1.01", "-1", "half"):
        monkeypatch.setenv("DIGITS_NOT_A_DIGIT_THRESHOLD", bad)
        with pytest.raises(ValueError, match="not_a_digit_threshold"):
            Settings()


def test_uploads_answer_alike_and_take_the_threshold_as_a_form_field(
    client: TestClient,
    not_a_digit_card: ModelCard,
    clear_digits: Digits,
    non_digits: dict[str, bytes],
) -> None:
    png, not_a_digit = _least_sure_digit(client, clear_digits)
    pngs = [png, *non_digits.values()]
    threshold = repr(not_a_digit)  # as a form sends a number: its text
    uploaded = _upload(client, pngs, not_a_digit_threshold=threshold, top_k="2")
    sent = _predict(client, pngs, not_a_digit_threshold=not_a_digit, top_k=2)
    assert [_without(p, "id") for p in uploaded] == [_without(p, "id") for p in sent]
    assert [p["is_digit"] for p in uploaded] == [False] * len(pngs)
    assert _upload(client, [png])[0]["is_digit"] is True  # the default, without the field


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "0.5", True, [0.5]])
def test_a_bad_threshold_in_json_is_a_422_naming_it(client: TestClient, value: object) -> None:
    png = non_digit_pngs()["filled-square"]
    body = {"images": [{"data": base64.b64encode(png).decode()}], "not_a_digit_threshold": value}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("not_a_digit_threshold: "), error


@pytest.mark.parametrize("text", ["0", "1.5", " 0.5", ".5", "half", "true", "nan"])
def test_a_bad_threshold_in_a_form_is_a_422_naming_it(client: TestClient, text: str) -> None:
    png = non_digit_pngs()["filled-square"]
    files = [("file", ("a.png", png, "image/png"))]
    response = client.post(UPLOAD, files=files, data={"not_a_digit_threshold": text})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("not_a_digit_threshold: "), error


def test_a_model_without_the_output_answers_every_image_as_a_digit(
    ten_output_client: TestClient, clear_digits: Digits
) -> None:
    images, labels = clear_digits
    pngs = [encode_png(image) for image in images[:3]] + list(non_digit_pngs().values())
    for predictions in (
        _predict(ten_output_client, pngs),
        _predict(ten_output_client, pngs, not_a_digit_threshold=0.01),  # valid, and moot
        _upload(ten_output_client, pngs, not_a_digit_threshold="0.01"),
    ):
        for prediction in predictions:
            assert prediction["not_a_digit"] is None and prediction["is_digit"] is True
            # As before the output existed: the ten sum to 1.
            assert math.isclose(sum(prediction["probabilities"]), 1, abs_tol=1e-9)
        assert [p["digit"] for p in predictions[:3]] == labels[:3].tolist()
    bad = ten_output_client.post(
        "/v1/predict", json={"images": [{"data": "QQ=="}], "not_a_digit_threshold": 2}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("not_a_digit_threshold: ")


@pytest.mark.parametrize("value", [0.00012345678901234567, 3.1e-05, 0.5, 1.0, 0.1 + 0.2])
def test_a_float_written_as_python_writes_it_is_read_back_from_a_form(value: float) -> None:
    """Any float's shortest text (`repr`, what a client's `str()` sends) is a number to the
    upload form, up to three zeros after the point included, and reads back as itself."""
    from service.api.forms import json_scalar

    assert json_scalar(repr(value)) == value
