"""gRPC messages → the dataplane's request model, typed contents as well as raw, and errors →
status codes: the paths `tritonclient.grpc` (always raw contents) does not take."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest

from samples.uploads import encode_png
from service.errors import ImageTooLargeError, InvalidImageError, ModelNotReadyError
from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.grpc.tensors import infer_request, infer_response, status_code_of
from service.model_card import ModelCard
from service.runtime.limits import Limits
from service.runtime.recognizer import Recognizer
from service.v2.codec import TensorError, decode_images
from service.v2.dataplane import OpenInference
from service.v2.outputs import DIGIT_OUTPUTS, model_outputs
from service.web.errors import ModelNotFoundError, NotSupportedError

LIMITS = Limits(max_images=256, max_body_bytes=1 << 20, max_pixels=1 << 20)


def _request(datatype: str, shape: list[int], **contents: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="t-1")
    request.inputs.add(
        name="images", datatype=datatype, shape=shape, contents=pb.InferTensorContents(**contents)
    )
    return request


def _digits(recognizer: Recognizer, request: pb.ModelInferRequest) -> np.ndarray:
    card = recognizer.model.card
    parsed, binary = infer_request(request, model_outputs(card), LIMITS)
    tensors = asyncio.run(OpenInference(recognizer).predict(parsed, binary))
    response = infer_response(parsed, card, tensors)
    assert response.id == "t-1"
    assert tuple(o.name for o in response.outputs) == model_outputs(card)  # all, in order
    return np.frombuffer(response.raw_output_contents[1], dtype="<i8")


def test_typed_contents_of_each_datatype(
    loaded_recognizer: Callable[[str | None], Recognizer],
    clear_digits: tuple[np.ndarray, np.ndarray],
) -> None:
    recognizer = loaded_recognizer(None)
    images, labels = clear_digits
    pixels = images[:8].reshape(8, 784)
    uint8 = _request("UINT8", [8, 784], uint_contents=pixels.ravel().tolist())
    fp32 = _request("FP32", [8, 28, 28], fp32_contents=(pixels.ravel() / 255).tolist())
    files = _request("BYTES", [8], bytes_contents=[encode_png(image) for image in images[:8]])
    for request in (uint8, fp32, files):
        np.testing.assert_array_equal(_digits(recognizer, request), labels[:8])


def test_raw_contents_and_chosen_outputs(
    loaded_recognizer: Callable[[str | None], Recognizer],
    clear_digits: tuple[np.ndarray, np.ndarray],
    model_card: ModelCard,
) -> None:
    images, labels = clear_digits
    request = pb.ModelInferRequest(model_name=model_card.name)
    request.inputs.add(name="x", datatype="UINT8", shape=[4, 28, 28, 1])
    request.raw_input_contents.append(images[:4].tobytes())
    request.outputs.add(name="digit")
    parsed, binary = infer_request(request, model_outputs(model_card), LIMITS)
    tensors = asyncio.run(OpenInference(loaded_recognizer(None)).predict(parsed, binary))
    response = infer_response(parsed, model_card, tensors)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("digit", "INT64", [4])
    ]
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], "<i8"), labels[:4])


def test_the_not_a_digit_outputs_as_raw_contents(
    loaded_recognizer: Callable[[str | None], Recognizer],
    not_a_digit_card: ModelCard,
    clear_digits: tuple[np.ndarray, np.ndarray],
) -> None:
    request = pb.ModelInferRequest(model_name=not_a_digit_card.name)
    request.inputs.add(name="x", datatype="UINT8", shape=[4, 28, 28])
    request.raw_input_contents.append(clear_digits[0][:4].tobytes())
    request.outputs.add(name="not_a_digit")
    request.outputs.add(name="is_digit")
    request.parameters["not_a_digit_threshold"].double_param = 0.5
    parsed, binary = infer_request(request, model_outputs(not_a_digit_card), LIMITS)
    tensors = asyncio.run(OpenInference(loaded_recognizer(None)).predict(parsed, binary))
    response = infer_response(parsed, not_a_digit_card, tensors)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("not_a_digit", "FP32", [4, 1]),
        ("is_digit", "BOOL", [4, 1]),
    ]
    not_a_digit = np.frombuffer(response.raw_output_contents[0], "<f4")
    is_digit = np.frombuffer(response.raw_output_contents[1], np.bool_)  # a byte each
    np.testing.assert_array_equal(is_digit, not_a_digit < 0.5)
    assert is_digit.all()


def test_a_model_without_the_output_has_only_the_digits_outputs(
    ten_output_recognizer: Recognizer, clear_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    card = ten_output_recognizer.model.card
    assert model_outputs(card) == DIGIT_OUTPUTS
    request = _request("UINT8", [2, 784], uint_contents=clear_digits[0][:2].ravel().tolist())
    np.testing.assert_array_equal(_digits(ten_output_recognizer, request), clear_digits[1][:2])
    request.outputs.add(name="is_digit")
    with pytest.raises(TensorError, match="unknown output 'is_digit'"):
        infer_request(request, model_outputs(card), LIMITS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.raw_input_contents.append(b"\0" * 784), "both contents and raw contents"),
        (lambda r: r.inputs[0].ClearField("contents"), "neither contents nor raw_input_contents"),
        (lambda r: r.inputs.append(r.inputs[0]), "exactly one input tensor"),
        (lambda r: r.outputs.add(name="logits"), "unknown output 'logits'"),
        (lambda r: r.inputs[0].contents.uint_contents.append(300), "holds 784 elements"),
        (lambda r: r.inputs[0].contents.uint_contents.__setitem__(9, 300), "must be in 0–255"),
        (lambda r: setattr(r, "id", "i" * 257), "id: String should have at most 256"),
    ],
)
def test_malformed_requests_name_the_problem(
    edit: Callable[[pb.ModelInferRequest], None], message: str
) -> None:
    request = _request("UINT8", [1, 784], uint_contents=[0] * 784)
    edit(request)
    with pytest.raises(TensorError, match=message):
        parsed, binary = infer_request(request, DIGIT_OUTPUTS, LIMITS)
        # Some problems show once the tensor is decoded, as over REST.
        decode_images(parsed.inputs[0], binary, LIMITS)


def test_raw_contents_must_match_the_inputs() -> None:
    request = _request("UINT8", [1, 784])
    request.inputs[0].ClearField("contents")
    request.raw_input_contents.extend([b"\0" * 784, b"\0" * 784])
    with pytest.raises(TensorError, match="2 raw_input_contents for 1 inputs"):
        infer_request(request, DIGIT_OUTPUTS, LIMITS)


def test_errors_map_to_the_status_codes_of_their_http_statuses() -> None:
    assert status_code_of(TensorError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code_of(InvalidImageError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code_of(ImageTooLargeError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code_of(ModelNotFoundError("x")) == grpc.StatusCode.NOT_FOUND
    assert status_code_of(ModelNotReadyError("x")) == grpc.StatusCode.UNAVAILABLE
    assert status_code_of(NotSupportedError("x")) == grpc.StatusCode.UNIMPLEMENTED
