"""`/v2`'s not-a-digit outputs (`not_a_digit`, `is_digit`): in the metadata, by default and
by name, JSON and binary, the `not_a_digit_threshold` parameter, blank and constant tensors
(answered by the model), and a model without the output, whose answers do not change."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from samples.uploads import encode_png
from service.model_card import DEFAULT_NOT_A_DIGIT_THRESHOLD, ModelCard
from tests.conftest import TEN_OUTPUT_CARD

Digits = tuple[np.ndarray, np.ndarray]
HEADER = "Inference-Header-Content-Length"
ALL_OUTPUTS = ["probabilities", "digit", "not_a_digit", "is_digit"]


def _infer(client: TestClient, request: dict[str, Any], status: int = 200) -> dict[str, Any]:
    name = client.get("/readyz").json()["model"]["name"]  # whichever model the app serves
    response = client.post(f"/v2/models/{name}/infer", json=request)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {output["name"]: output for output in body["outputs"]}


def _files(pngs: list[bytes]) -> dict[str, Any]:
    data = [base64.b64encode(png).decode() for png in pngs]
    return {"name": "png", "datatype": "BYTES", "shape": [len(pngs)], "data": data}


def _pixels(images: np.ndarray) -> dict[str, Any]:
    shape = [len(images), 28, 28]
    return {"name": "x", "datatype": "UINT8", "shape": shape, "data": images.ravel().tolist()}


def test_metadata_lists_the_two_outputs(client: TestClient, not_a_digit_card: ModelCard) -> None:
    metadata = client.get(f"/v2/models/{not_a_digit_card.name}").json()
    assert metadata["outputs"][2:] == [
        {"name": "not_a_digit", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "is_digit", "datatype": "BOOL", "shape": [-1, 1]},
    ]


def test_every_output_by_default_and_each_by_name(
    client: TestClient,
    not_a_digit_card: ModelCard,
    clear_digits: Digits,
    non_digits: dict[str, bytes],
) -> None:
    images, labels = clear_digits
    pngs = [encode_png(image) for image in images[:4]] + list(non_digits.values())
    count = len(pngs)
    outputs = _outputs(_infer(client, {"inputs": [_files(pngs)]}))

    assert list(outputs) == ALL_OUTPUTS
    assert (outputs["not_a_digit"]["datatype"], outputs["not_a_digit"]["shape"]) == (
        "FP32",
        [count, 1],
    )
    assert (outputs["is_digit"]["datatype"], outputs["is_digit"]["shape"]) == ("BOOL", [count, 1])
    not_a_digit = np.array(outputs["not_a_digit"]["data"])
    is_digit = outputs["is_digit"]["data"]
    assert is_digit == (not_a_digit < DEFAULT_NOT_A_DIGIT_THRESHOLD).tolist()
    assert is_digit == [True] * 4 + [False] * (count - 4)
    assert outputs["digit"]["data"][:4] == labels[:4].tolist()
    probabilities = np.reshape(outputs["probabilities"]["data"], (count, 10))
    np.testing.assert_allclose(probabilities.sum(axis=1) + not_a_digit, 1, atol=1e-5)
    # The numbers /v1 gives for the same files.
    v1 = client.post("/v1/predict", json={"images": [{"data": d} for d in _files(pngs)["data"]]})
    predictions = v1.json()["predictions"]
    assert [p["is_digit"] for p in predictions] == is_digit
    np.testing.assert_allclose([p["not_a_digit"] for p in predictions], not_a_digit, atol=1e-6)

    chosen = [{"name": "is_digit"}, {"name": "not_a_digit"}]
    asked = _infer(client, {"inputs": [_files(pngs)], "outputs": chosen})
    assert [(o["name"], o["shape"]) for o in asked["outputs"]] == [
        ("is_digit", [count, 1]),
        ("not_a_digit", [count, 1]),
    ]
    assert asked["outputs"][0]["data"] == is_digit


def test_binary_outputs(
    client: TestClient,
    not_a_digit_card: ModelCard,
    clear_digits: Digits,
    non_digits: dict[str, bytes],
) -> None:
    """BOOL in binary is one byte per element, as the protocol lays it out."""
    pngs = [encode_png(clear_digits[0][0]), *non_digits.values()]
    count = len(pngs)
    header = json.dumps(
        {"inputs": [_files(pngs)], "parameters": {"binary_data_output": True}}
    ).encode()
    response = client.post(
        f"/v2/models/{not_a_digit_card.name}/infer",
        content=header,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER])
    outputs = json.loads(response.content[:length])["outputs"]
    sizes = [output["parameters"]["binary_data_size"] for output in outputs]
    assert [o["name"] for o in outputs] == ALL_OUTPUTS
    assert sizes == [count * 10 * 4, count * 8, count * 4, count]
    blobs = np.split(np.frombuffer(response.content[length:], np.uint8), np.cumsum(sizes)[:-1])
    not_a_digit = blobs[2].view("<f4")
    is_digit = blobs[3].view(np.bool_)
    assert is_digit.tolist() == [True] + [False] * (count - 1)
    assert is_digit.tolist() == (not_a_digit < DEFAULT_NOT_A_DIGIT_THRESHOLD).tolist()


def test_the_threshold_parameter_overrides_the_servers(
    client: TestClient, not_a_digit_card: ModelCard, clear_digits: Digits
) -> None:
    pixels = _pixels(clear_digits[0][:6])
    default = _outputs(_infer(client, {"inputs": [pixels]}))
    not_a_digit = np.ravel(default["not_a_digit"]["data"])
    assert default["is_digit"]["data"] == [True] * 6
    threshold = float(not_a_digit.max())  # "at least the threshold" is no digit
    chosen = _outputs(
        _infer(client, {"inputs": [pixels], "parameters": {"not_a_digit_threshold": threshold}})
    )
    assert chosen["is_digit"]["data"] == (not_a_digit < threshold).tolist()
    assert not all(chosen["is_digit"]["data"])
    assert chosen["not_a_digit"] == default["not_a_digit"]
    assert chosen["probabilities"] == default["probabilities"]


def test_the_setting_is_the_default_threshold_on_v2(
    make_app: Callable[..., FastAPI], not_a_digit_card: ModelCard, clear_digits: Digits
) -> None:
    request = {"inputs": [_pixels(clear_digits[0][:6])]}
    with TestClient(make_app()) as client:
        default = _outputs(_infer(client, request))
    not_a_digit = np.ravel(default["not_a_digit"]["data"])
    threshold = float(not_a_digit.max())
    with TestClient(make_app(not_a_digit_threshold=threshold)) as strict:
        refused = _outputs(_infer(strict, request))
    assert default["is_digit"]["data"] == [True] * 6
    assert refused["is_digit"]["data"] == (not_a_digit < threshold).tolist()
    assert not all(refused["is_digit"]["data"])


@pytest.mark.parametrize("value", [True, "0.5", 0, -1, 1.5, [0.5]])
def test_a_bad_threshold_parameter_is_400_naming_it(client: TestClient, value: object) -> None:
    request: dict[str, Any] = {"inputs": [_pixels(np.zeros((1, 28, 28), np.uint8))]}
    request["parameters"] = {"not_a_digit_threshold": value}
    error = _infer(client, request, status=400)["error"]
    assert error.startswith("parameter not_a_digit_threshold must be a number in (0, 1]"), error


def test_blank_and_constant_tensors_are_answered_as_no_digit(
    client: TestClient, not_a_digit_card: ModelCard
) -> None:
    """Pixels are not preprocessed, so nothing refuses a blank tensor before the model: the
    model answers it, and it must not be a confident digit."""
    constants = np.stack([np.full((28, 28), value, np.uint8) for value in (0, 1, 128, 255)])
    halves = {"name": "x", "datatype": "FP32", "shape": [2, 784], "data": [0.0] * 784 + [0.5] * 784}
    tensors: list[dict[str, Any]] = [_pixels(constants), halves]
    for tensor in tensors:
        outputs = _outputs(_infer(client, {"inputs": [tensor]}))
        count = tensor["shape"][0]
        assert outputs["is_digit"]["data"] == [False] * count
        not_a_digit = np.ravel(outputs["not_a_digit"]["data"])
        best = np.reshape(outputs["probabilities"]["data"], (count, 10)).max(axis=1)
        assert (best <= 1 - not_a_digit + 1e-6).all() and (best < 0.5).all()


def test_a_model_without_the_output_keeps_its_two_outputs(
    ten_output_client: TestClient, clear_digits: Digits
) -> None:
    card = ModelCard.load(TEN_OUTPUT_CARD)
    metadata = ten_output_client.get(f"/v2/models/{card.name}").json()
    assert [o["name"] for o in metadata["outputs"]] == ["probabilities", "digit"]
    images, labels = clear_digits
    for parameters in (None, {"not_a_digit_threshold": 0.01}):  # valid, and moot
        request: dict[str, Any] = {"inputs": [_pixels(images[:5])], "parameters": parameters}
        outputs = _outputs(_infer(ten_output_client, request))
        assert list(outputs) == ["probabilities", "digit"]
        assert outputs["digit"]["data"] == labels[:5].tolist()
        probabilities = np.reshape(outputs["probabilities"]["data"], (5, 10))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    asked = {"inputs": [_pixels(images[:1])], "outputs": [{"name": "not_a_digit"}]}
    error = _infer(ten_output_client, asked, status=400)["error"]
    assert error == "unknown output 'not_a_digit'; the model's outputs are probabilities, digit"
