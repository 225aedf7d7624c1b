"""NVIDIA's own Triton HTTP client (`tritonclient[http]`) against a real server on loopback.

What Triton users already run must work unchanged: health and metadata calls, and
inference with numpy batches in both JSON and binary tensor modes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from samples.uploads import encode_png, load_test_digits
from service.app import create_app
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.loopback_server import live_server

COUNT = 200  # real MNIST test digits per batch


@pytest.fixture(scope="module")
def triton_client(
    make_settings: Callable[..., Settings], loaded_recognizer: Callable[[str | None], Recognizer]
) -> Iterator[triton.InferenceServerClient]:
    app = create_app(make_settings(), loaded_recognizer(None))
    with live_server(app) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(COUNT)


def test_health_and_metadata(
    triton_client: triton.InferenceServerClient, model_card: ModelCard
) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(model_card.name)
    assert triton_client.is_model_ready(model_card.name, model_version=model_card.version)
    assert not triton_client.is_model_ready("resnet50")
    assert not triton_client.is_model_ready(model_card.name, model_version="0")

    server = triton_client.get_server_metadata()
    assert server["name"] == "digits" and "binary_tensor_data" in server["extensions"]
    metadata = triton_client.get_model_metadata(model_card.name)
    assert metadata["versions"] == [model_card.version]
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("images", "FP32")]
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]}
    expected = {"probabilities": ("FP32", [-1, 10]), "digit": ("INT64", [-1])}
    if model_card.not_a_digit is not None:
        expected |= {"not_a_digit": ("FP32", [-1, 1]), "is_digit": ("BOOL", [-1, 1])}
    assert outputs == expected


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize(("datatype", "shape"), [("UINT8", (28, 28)), ("FP32", (784,))])
def test_infer_numpy_batch(
    triton_client: triton.InferenceServerClient,
    model_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
    binary: bool,
    datatype: str,
    shape: tuple[int, ...],
) -> None:
    images, labels = digits
    batch = images.reshape(len(images), *shape)
    if datatype == "FP32":
        batch = batch.astype(np.float32) / 255
    tensor = triton.InferInput("images", list(batch.shape), datatype)
    tensor.set_data_from_numpy(batch, binary_data=binary)
    requested = [
        triton.InferRequestedOutput("digit", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]

    result = triton_client.infer(model_card.name, [tensor], outputs=requested, request_id="b-1")

    digits_out = result.as_numpy("digit")
    probabilities = result.as_numpy("probabilities")
    assert digits_out.dtype == np.int64 and probabilities.shape == (COUNT, 10)
    assert result.get_response()["id"] == "b-1"
    np.testing.assert_array_equal(digits_out, probabilities.argmax(axis=1))
    # The committed model scores ~99 % on MNIST's test split.
    assert (digits_out == labels).mean() >= 0.97


def test_infer_with_default_outputs_and_version(
    triton_client: triton.InferenceServerClient,
    model_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """No `outputs`: tritonclient then asks for every output in binary."""
    images, labels = digits
    tensor = triton.InferInput("images", [16, 28, 28, 1], "UINT8")
    tensor.set_data_from_numpy(images[:16, ..., np.newaxis])
    result = triton_client.infer(model_card.name, [tensor], model_version=model_card.version)
    np.testing.assert_array_equal(
        result.as_numpy("digit"), result.as_numpy("probabilities").argmax(1)
    )
    assert (result.as_numpy("digit") == labels[:16]).mean() >= 0.9


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_encoded_png_files(
    triton_client: triton.InferenceServerClient,
    model_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
    binary: bool,
) -> None:
    images, labels = digits
    files = [encode_png(image) for image in images[:8]]
    # JSON carries text only: the files go base64-encoded; binary data takes them raw.
    elements = files if binary else [base64.b64encode(f) for f in files]
    tensor = triton.InferInput("png", [8], "BYTES")
    tensor.set_data_from_numpy(np.array(elements, dtype=np.object_), binary_data=binary)
    requested = [triton.InferRequestedOutput("digit", binary_data=binary)]

    result = triton_client.infer(model_card.name, [tensor], outputs=requested)

    assert (result.as_numpy("digit") == labels[:8]).mean() >= 0.85
    assert result.as_numpy("probabilities") is None  # not requested, not sent


@pytest.mark.parametrize(
    ("datatype", "array", "message"),
    [
        ("UINT8", np.zeros((4, 28), np.uint8), "shape [4, 28] is not [N, 28, 28]"),
        ("FP32", np.full((1, 784), 255, np.float32), "FP32 values must be in [0, 1]"),
        ("INT32", np.zeros((1, 784), np.int32), "'INT32' is not supported"),
    ],
)
def test_errors_reach_the_client(
    triton_client: triton.InferenceServerClient,
    model_card: ModelCard,
    datatype: str,
    array: np.ndarray,
    message: str,
) -> None:
    tensor = triton.InferInput("images", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer(model_card.name, [tensor])
    assert raised.value.status() == "400"
    assert message in raised.value.message()

    with pytest.raises(InferenceServerException) as unknown:
        triton_client.infer("resnet50", [tensor])
    assert unknown.value.status() == "404"
    assert "unknown model 'resnet50'" in unknown.value.message()
