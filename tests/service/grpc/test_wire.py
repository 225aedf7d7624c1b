"""ModelInfer bytes counted before they are parsed (service/grpc/wire.py): every valid request
passes, whatever its size; what holds more than any valid request is refused unparsed."""

from __future__ import annotations

import re
from typing import Any

import grpc
import numpy as np
import pytest

from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.grpc.tensors import status_code_of
from service.grpc.wire import (
    MalformedMessageError,
    TooManyValuesError,
    max_fields,
    read_infer_request,
)
from service.runtime.limits import Limits
from service.v2.codec import max_json_values

LIMITS = Limits(max_images=256, max_body_bytes=32 << 20, max_pixels=1 << 20)


def _request(datatype: str, shape: list[int], **contents: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="r")
    request.inputs.add(name="images", datatype=datatype, shape=shape)
    if contents:
        request.inputs[0].contents.CopyFrom(pb.InferTensorContents(**contents))
    for name in ("probabilities", "digit", "not_a_digit", "is_digit"):
        request.outputs.add(name=name).parameters["binary_data"].bool_param = True
    request.parameters["not_a_digit_threshold"].double_param = 0.5
    return request


def _largest_valid_requests() -> list[pb.ModelInferRequest]:
    count = LIMITS.max_images
    raw = _request("UINT8", [count, 28, 28])
    raw.raw_input_contents.append(bytes(count * 784))
    return [
        raw,
        # 255 is a two-byte varint: the most bytes a UINT8 value takes.
        _request("UINT8", [count, 784], uint_contents=np.full(count * 784, 255, np.uint32)),
        _request("FP32", [count, 28, 28, 1], fp32_contents=np.ones(count * 784, np.float32)),
        _request("BYTES", [count], bytes_contents=[b"\x89PNG" * 1000] * count),
    ]


@pytest.mark.parametrize("request_", _largest_valid_requests())
def test_the_largest_valid_requests_pass(request_: pb.ModelInferRequest) -> None:
    data = request_.SerializeToString()
    message, values = read_infer_request(data, LIMITS)
    assert message == request_
    assert values <= max_json_values(LIMITS.max_images)


def test_a_small_message_is_not_walked_but_still_checked() -> None:
    request = _request("UINT8", [1, 784], uint_contents=[7] * 784)
    data = request.SerializeToString()
    assert len(data) < 2 * max_fields(LIMITS.max_images)  # cannot hold too much
    assert read_infer_request(data, LIMITS) == (request, len(data))
    with pytest.raises(MalformedMessageError, match="not a valid ModelInferRequest"):
        read_infer_request(data[:-1], LIMITS)


def _values(count: int) -> bytes:
    return _request("UINT8", [1, 784], uint_contents=[0] * count).SerializeToString()


def _outputs(count: int) -> bytes:
    request = pb.ModelInferRequest(model_name="m")
    for _ in range(count):
        request.outputs.add(name="digit")
    return request.SerializeToString()


@pytest.mark.parametrize(
    ("data", "bound", "where"),
    [
        (_values(max_json_values(256)), "420864 values", "inputs.0.contents.uint_contents"),
        # Packed floats are counted from their length, without reading them.
        (
            _request(
                "FP32", [1, 784], fp32_contents=np.zeros(10**6, np.float32)
            ).SerializeToString(),
            "420864 values",
            "inputs.0.contents.fp32_contents",
        ),
        (_outputs(max_fields(256)), "4864 fields", "outputs."),
        (b"\x78\x00" * 10_000, "4864 fields", "field 15"),  # unknown fields count too
        (b"\x2a\x00" * 10_000, "4864 fields", "inputs"),  # empty input tensors
    ],
)
def test_what_no_valid_request_holds_is_refused(data: bytes, bound: str, where: str) -> None:
    with pytest.raises(TooManyValuesError) as refused:
        read_infer_request(data, LIMITS)
    assert f"more than {bound} (at {where}" in refused.value.message
    assert "more than a valid request of at most 256 images" in refused.value.message
    assert status_code_of(refused.value) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_request_just_under_the_bounds_passes() -> None:
    around = read_infer_request(_values(20_000), LIMITS)[1] - 20_000  # fields, shape...
    read_infer_request(_values(max_json_values(256) - around), LIMITS)
    read_infer_request(_outputs(max_fields(256) // 2 - 1), LIMITS)  # a field and its name


# An unknown field of 20,000 bytes: long enough for the message to be walked.
PAD = b"\x7a\xa0\x9c\x01" + bytes(20_000)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (PAD + b"\x2a\xff\xff\xff\x0f", "not a valid ModelInferRequest"),  # past the end
        (PAD + b"\x2a", "not a valid ModelInferRequest (a varint)"),  # a length cut short
        (PAD + b"\x0b", "not protobuf 3 (wire type 3)"),  # a group
        (b"\x0a\x02\xff\xfe" + PAD, "not a valid ModelInferRequest: Error parsing"),  # UTF-8
    ],
)
def test_what_is_not_a_request_is_invalid(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedMessageError, match=re.escape(problem)) as refused:
        read_infer_request(data, LIMITS)
    assert status_code_of(refused.value) == grpc.StatusCode.INVALID_ARGUMENT
