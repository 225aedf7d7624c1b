"""The Open Inference Protocol (/v2) through the ASGI app: JSON and binary tensors, errors."""

from __future__ import annotations

import base64
import json
import struct
import threading
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from samples.uploads import encode_png
from service.app import create_app
from service.model_card import ModelCard
from service.settings import Settings

Digits = tuple[np.ndarray, np.ndarray]
HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def v2(client: TestClient, model_card: ModelCard) -> Callable[..., dict]:
    """POST a JSON inference request to the served model; the response body, expecting 200."""

    def infer(request: dict, path: str = f"/v2/models/{model_card.name}/infer") -> dict:
        response = client.post(path, json=request)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    return infer


def _pixels(images: np.ndarray, datatype: str, shape: list[int]) -> dict:
    values = images if datatype == "UINT8" else images.astype(np.float32) / 255
    return {"name": "x", "datatype": datatype, "shape": shape, "data": values.ravel().tolist()}


def _outputs(body: dict) -> dict[str, dict]:
    return {output["name"]: output for output in body["outputs"]}


def test_server_metadata_and_health(client: TestClient) -> None:
    metadata = client.get("/v2").json()
    assert metadata["name"] == "digits"
    assert metadata["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_model_metadata_and_readiness(client: TestClient, model_card: ModelCard) -> None:
    name, version = model_card.name, model_card.version
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
        metadata = client.get(path).json()
        assert metadata["name"] == name and metadata["versions"] == [version]
        assert metadata["inputs"] == [
            {"name": "images", "datatype": "FP32", "shape": [-1, 28, 28, 1]}
        ]
        expected = [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
        ]
        if model_card.not_a_digit is not None:
            expected += [
                {"name": "not_a_digit", "datatype": "FP32", "shape": [-1, 1]},
                {"name": "is_digit", "datatype": "BOOL", "shape": [-1, 1]},
            ]
        assert metadata["outputs"] == expected
        ready = client.get(path + "/ready")
        assert (ready.status_code, ready.json()) == (200, {"name": name, "ready": True})


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/{name}/versions/0.0.0",
        "/v2/models/{name}/versions/0.0.0/ready",
    ],
)
def test_unknown_model_or_version_is_404(
    client: TestClient, model_card: ModelCard, path: str
) -> None:
    response = client.get(path.format(name=model_card.name))
    assert response.status_code == 404
    (message,) = response.json().values()  # the protocol's flat {"error": "..."}
    assert model_card.name in response.json()["error"] and isinstance(message, str)
    infer = client.post(
        path.format(name=model_card.name).removesuffix("/ready") + "/infer", json={}
    )
    assert infer.status_code == 404 and "error" in infer.json()


def test_unknown_v2_path_answers_in_the_v2_shape(client: TestClient) -> None:
    response = client.get("/v2/logging")  # Triton's logging extension: not served
    assert response.status_code == 404
    assert response.json() == {"error": "no such endpoint: /v2/logging"}


@pytest.mark.parametrize(
    ("datatype", "shape"),
    [("UINT8", [30, 28, 28]), ("UINT8", [30, 784]), ("FP32", [30, 28, 28, 1]), ("FP32", [30, 784])],
)
def test_infer_pixels(
    v2: Callable[..., dict], clear_digits: Digits, model_card: ModelCard, datatype: str, shape: list
) -> None:
    images, labels = clear_digits
    body = v2({"id": "batch-1", "inputs": [_pixels(images, datatype, shape)]})

    assert (body["model_name"], body["model_version"]) == (model_card.name, model_card.version)
    assert body["id"] == "batch-1"
    outputs = _outputs(body)
    assert outputs["digit"]["datatype"] == "INT64" and outputs["digit"]["shape"] == [30]
    assert outputs["digit"]["data"] == labels.tolist()
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(
        outputs["probabilities"]["shape"]
    )
    assert probabilities.shape == (30, 10) and outputs["probabilities"]["datatype"] == "FP32"
    # With the not-a-digit output, the ten digits share what it leaves.
    rest = np.ravel(outputs["not_a_digit"]["data"]) if "not_a_digit" in outputs else 0
    np.testing.assert_allclose(probabilities.sum(axis=1), 1 - rest, atol=1e-5)
    assert probabilities.argmax(axis=1).tolist() == labels.tolist()


def test_nested_data_equals_flat_data(v2: Callable[..., dict], clear_digits: Digits) -> None:
    images, _ = clear_digits
    flat = v2({"inputs": [_pixels(images[:3], "UINT8", [3, 28, 28])]})
    nested = v2(
        {"inputs": [{**_pixels(images[:3], "UINT8", [3, 28, 28]), "data": images[:3].tolist()}]}
    )
    assert flat == nested


def test_uint8_and_fp32_agree_with_v1(
    client: TestClient, v2: Callable[..., dict], clear_digits: Digits
) -> None:
    """Pixels sent as pixels and as PNG files are the same images to the model."""
    images, _ = clear_digits
    uint8 = _outputs(v2({"inputs": [_pixels(images[:4], "UINT8", [4, 28, 28])]}))
    fp32 = _outputs(v2({"inputs": [_pixels(images[:4], "FP32", [4, 784])]}))
    np.testing.assert_allclose(
        uint8["probabilities"]["data"], fp32["probabilities"]["data"], atol=1e-6
    )
    pngs = [{"data": _b64(encode_png(image))} for image in images[:4]]
    v1 = client.post("/v1/predict", json={"images": pngs}).json()["predictions"]
    v1_probabilities = np.array([p["probabilities"] for p in v1]).ravel()
    np.testing.assert_allclose(uint8["probabilities"]["data"], v1_probabilities, atol=1e-5)


def test_infer_encoded_images(
    v2: Callable[..., dict], clear_digits: Digits, model_card: ModelCard
) -> None:
    images, labels = clear_digits
    files = [_b64(encode_png(image)) for image in images[:5]]
    files[1] = "data:image/png;base64," + files[1]  # data URLs too, as in /v1
    for shape, data in (([5], files), ([5, 1], [[f] for f in files])):
        tensor = {"name": "png", "datatype": "BYTES", "shape": shape, "data": data}
        body = v2({"inputs": [tensor], "outputs": [{"name": "digit"}]})
        assert [o["name"] for o in body["outputs"]] == ["digit"]  # only what was asked for
        assert body["outputs"][0]["data"] == labels[:5].tolist()
    versioned = f"/v2/models/{model_card.name}/versions/{model_card.version}/infer"
    tensor = {"name": "png", "datatype": "BYTES", "shape": [1], "data": files[:1]}
    assert _outputs(v2({"inputs": [tensor]}, path=versioned))["digit"]["data"] == [labels[0]]


def test_binary_tensors_in_and_out(
    client: TestClient, clear_digits: Digits, model_card: ModelCard
) -> None:
    """The binary tensor data extension, byte for byte as the protocol lays it out."""
    images, labels = clear_digits
    pixels = images[:6].astype("<f4") / 255
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [6, 28, 28],
                "parameters": {"binary_data_size": pixels.nbytes},
            }
        ],
        "outputs": [
            {"name": "digit", "parameters": {"binary_data": True}},
            {"name": "probabilities"},
        ],
    }
    response = _post_binary(client, model_card, header, pixels.tobytes())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    body = json.loads(response.content[:length])
    digit, probabilities = body["outputs"]
    assert digit == {
        "name": "digit",
        "datatype": "INT64",
        "shape": [6],
        "parameters": {"binary_data_size": 48},
    }
    assert np.frombuffer(response.content[length:], "<i8").tolist() == labels[:6].tolist()
    assert (
        np.argmax(np.reshape(probabilities["data"], (6, 10)), axis=1).tolist()
        == labels[:6].tolist()
    )


def test_binary_encoded_images(
    client: TestClient, clear_digits: Digits, model_card: ModelCard
) -> None:
    """BYTES elements in binary: a 4-byte little-endian length, then the file."""
    images, labels = clear_digits
    files = [encode_png(image) for image in images[:3]]
    files[2] = _b64(files[2]).encode()  # base64 text sent in binary is taken as such
    data = b"".join(struct.pack("<I", len(f)) + f for f in files)
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "BYTES",
                "shape": [3],
                "parameters": {"binary_data_size": len(data)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    response = _post_binary(client, model_card, header, data)

    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER])
    # Every output, in binary, in the order of the model metadata: the digits' two first.
    probabilities_output, digit_output, *_ = json.loads(response.content[:length])["outputs"]
    assert probabilities_output["parameters"] == {"binary_data_size": 3 * 10 * 4}
    assert digit_output["parameters"] == {"binary_data_size": 3 * 8}
    digits = np.frombuffer(response.content[length + 120 : length + 120 + 24], "<i8")
    assert digits.tolist() == labels[:3].tolist()


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"datatype": "UINT8", "shape": [2, 28], "data": [0] * 56}, "is not [N, 28, 28]"),
        ({"datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 10}, "holds 784 elements"),
        ({"datatype": "UINT8", "shape": [1, 784], "data": [300] * 784}, "0–255"),
        ({"datatype": "UINT8", "shape": [1, 784], "data": [0.5] * 784}, "must be integers"),
        ({"datatype": "FP32", "shape": [1, 784], "data": [255.0] * 784}, "[0, 1]"),
        ({"datatype": "FP32", "shape": [1, 784], "data": ["a"] * 784}, "must be numbers"),
        (
            {"datatype": "FP32", "shape": [1, 784], "data": [[0.0] * 3, [0.0]]},
            "not a regular array",
        ),
        ({"datatype": "INT32", "shape": [1, 784], "data": [0] * 784}, "'INT32' is not supported"),
        ({"datatype": "BYTES", "shape": [2], "data": ["iVBO"]}, "holds 2 elements, got 1"),
        ({"datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}, "[N] or [N, 1]"),
        ({"datatype": "BYTES", "shape": [1], "data": [7]}, "element 0 is not a base64 string"),
        ({"datatype": "BYTES", "shape": [2], "data": ["iVBO", "eA=="]}, "element 0: "),
        ({"datatype": "FP32", "shape": [0, 784], "data": []}, "holds no image"),
        ({"datatype": "FP32", "shape": [1, 784]}, "has neither data nor binary_data_size"),
    ],
)
def test_bad_tensors_are_400_naming_the_problem(
    client: TestClient, model_card: ModelCard, tensor: dict, message: str
) -> None:
    response = client.post(
        f"/v2/models/{model_card.name}/infer", json={"inputs": [{"name": "pixels", **tensor}]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert isinstance(error, str) and message in error and "'pixels'" in error


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"inputs": []}, "exactly one input tensor"),
        ({"inputs": [{"name": "a"}]}, "inputs.0.shape: Field required"),
        ({"inputs": "x"}, "invalid inference request"),
        ({"outputs": [{"name": "logits"}], "inputs": [{}]}, "inputs.0"),
        ({"inputs": [{"name": "a", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
          "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        ({"inputs": [{"name": "a", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
          "outputs": [{"name": "digit", "parameters": {"classification": 3}}]}, "classification"),
        ({"inputs": [{"name": "a", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
          "parameters": {"binary_data_output": "yes"}}, "binary_data_output must be true or false"),
    ],
)  # fmt: skip
def test_bad_requests_are_400(
    client: TestClient, model_card: ModelCard, request_body: dict, message: str
) -> None:
    response = client.post(f"/v2/models/{model_card.name}/infer", json=request_body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_bad_bodies_are_400(client: TestClient, model_card: ModelCard) -> None:
    path = f"/v2/models/{model_card.name}/infer"
    not_json = client.post(path, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]

    tensor = {"name": "x", "datatype": "UINT8", "shape": [1, 784]}
    for header_length, binary_size, extra, message in [
        ("x", 784, 784, "is not an integer"),
        ("99999", 784, 784, "but the body has"),
        (None, 784, 700, "binary_data_size is 784, but 700 bytes follow"),
    ]:
        header = json.dumps(
            {"inputs": [{**tensor, "parameters": {"binary_data_size": binary_size}}]}
        ).encode()
        length = header_length or str(len(header))
        response = client.post(path, content=header + bytes(extra), headers={HEADER: length})
        assert response.status_code == 400 and message in response.json()["error"]


def test_compressed_body_is_refused(client: TestClient, model_card: ModelCard) -> None:
    response = client.post(
        f"/v2/models/{model_card.name}/infer",
        content=b"\x1f\x8b...",
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert response.status_code == 415
    assert "Content-Encoding: gzip" in response.json()["error"]


def test_limits_apply(make_app: Callable[..., FastAPI], model_card: ModelCard) -> None:
    with TestClient(make_app(max_images=2, max_body_bytes=4096)) as client:
        path = f"/v2/models/{model_card.name}/infer"
        tensor = {"name": "x", "datatype": "UINT8", "shape": [3, 1, 1], "data": [0, 0, 0]}
        many = client.post(path, json={"inputs": [tensor]})
        assert many.status_code == 400 and "at most 2 images" in many.json()["error"]
        large = client.post(path, content=b"x" * 5000, headers={"content-type": "application/json"})
        assert large.status_code == 413
        assert large.json() == {"error": "request body is over the limit of 4096 bytes"}


def test_not_ready_while_loading(
    make_settings: Callable[..., Settings], held_model_load: threading.Event
) -> None:
    release = held_model_load
    with TestClient(create_app(make_settings())) as client:
        try:
            assert client.get("/v2/health/live").status_code == 200
            ready = client.get("/v2/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"ready": False})
            for response in (
                client.get("/v2/models/any/ready"),
                client.post("/v2/models/any/infer"),
            ):
                assert response.status_code == 503
                assert response.json() == {"error": "the model is still loading"}
        finally:
            release.set()


@pytest.fixture
def draining_client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = make_app(max_images=255)  # a recognizer of its own: draining is one-way
    with TestClient(app) as client:
        app.state.recognizer.start_draining()
        yield client


def test_not_ready_while_draining(draining_client: TestClient, model_card: ModelCard) -> None:
    assert draining_client.get("/v2/health/ready").status_code == 503
    assert draining_client.get(f"/v2/models/{model_card.name}/ready").status_code == 503
    # Still serving what is already on its way, as /v1 does.
    assert draining_client.get(f"/v2/models/{model_card.name}").status_code == 200


def _post_binary(client: TestClient, card: ModelCard, header: dict, data: bytes) -> httpx.Response:
    encoded = json.dumps(header).encode()
    return client.post(
        f"/v2/models/{card.name}/infer",
        content=encoded + data,
        headers={HEADER: str(len(encoded)), "content-type": "application/octet-stream"},
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
