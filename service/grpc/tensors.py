"""gRPC inference messages ⇄ the dataplane's own request model, and errors → status codes.

A `ModelInferRequest` becomes the `InferRequest` the REST `/v2` route parses from JSON, its
`raw_input_contents` the binary data the REST binary extension carries: from there, the
same code (service/v2/codec.py) checks, decodes and answers both protocols.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from pydantic import ValidationError

from service.errors import DigitsError
from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.model_card import ModelCard
from service.runtime.limits import Limits, TooManyImagesError
from service.v2.codec import TensorError, check_request
from service.v2.outputs import OUTPUT_DATATYPES
from service.v2.schemas import InferRequest, Parameters, RequestInput
from service.web.bounds import clip
from service.web.errors import NotSupportedError, status_of

# Where typed (non-raw) contents of each datatype the model takes are, per the protocol.
_TYPED_CONTENTS = {"UINT8": "uint_contents", "FP32": "fp32_contents", "BYTES": "bytes_contents"}

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"

# The HTTP status the REST protocol answers, as the gRPC code with the same meaning.
_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code_of(error: DigitsError) -> grpc.StatusCode:
    """The gRPC status for an error: that of its HTTP status (service/web/errors.py)."""
    if isinstance(error, NotSupportedError):  # 400 over REST, as Triton answers it
        return grpc.StatusCode.UNIMPLEMENTED
    return _STATUS_CODES.get(status_of(error), grpc.StatusCode.INTERNAL)


def parameters(entries: Mapping[str, pb.InferParameter]) -> Parameters | None:
    """A parameter map as the JSON protocol has it: name → bool, int, float or string."""
    if not entries:
        return None
    values: Parameters = {}
    for key, value in entries.items():
        choice = value.WhichOneof("parameter_choice")
        values[key] = getattr(value, choice) if choice is not None else None
    return values


def infer_request(
    message: pb.ModelInferRequest, known_outputs: Collection[str], limits: Limits
) -> tuple[InferRequest, bytes | None]:
    """The request as `InferRequest`, and its input's data as bytes, checked like REST's
    against the model's outputs (service/v2/outputs.py: `model_outputs`) and `limits`.

    `message` was read by `read_infer_request` (service/grpc/wire.py), so its fields and
    values are already bounded; typed contents are counted against the declared shape
    before any is converted. Pixels become the binary data REST's binary extension carries.
    """
    # Each read of a repeated bytes field's element is a new copy of it (upb keeps the data
    # in its arena; 0.7 ms for 8 MB): one list, so that each is copied once, not twice.
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise TensorError(
            f"{len(raw)} raw_input_contents for {len(message.inputs)} inputs: "
            "send one per input, in the order of inputs"
        )
    request = _validated(message)
    binary = None
    if len(request.inputs) == 1:  # any other number is refused below, as REST refuses it
        tensor = request.inputs[0]
        binary = _contents(tensor, message.inputs[0], raw[0] if raw else None, limits)
    return check_request(request, binary or b"", known_outputs)


def _validated(message: pb.ModelInferRequest) -> InferRequest:
    """Everything but the tensors' contents, through the schema REST validates JSON with,
    so that ids and names have its bounds (service/web/bounds.py) and errors its words.
    It costs less than building the models unvalidated (`model_construct`)."""
    document = {
        "id": message.id or None,
        "parameters": parameters(message.parameters),
        "inputs": [
            {
                "name": tensor.name,
                "shape": list(tensor.shape),
                "datatype": tensor.datatype,
                "parameters": parameters(tensor.parameters),
            }
            for tensor in message.inputs
        ],
        "outputs": [
            {"name": output.name, "parameters": parameters(output.parameters)}
            for output in message.outputs
        ]
        or None,
    }
    try:
        return InferRequest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = clip(".".join(str(part) for part in first["loc"])) or "request"
        raise TensorError(f"invalid inference request: {where}: {first['msg']}") from None


def _contents(
    tensor: RequestInput,
    message: pb.ModelInferRequest.InferInputTensor,
    raw: bytes | None,
    limits: Limits,
) -> bytes | None:
    """Puts the tensor's contents in `tensor` as REST has them: typed BYTES contents as
    `data`, pixels and raw contents as binary data of `binary_data_size` bytes (the binary
    extension's way of saying so), which it returns."""
    has_contents = message.HasField("contents")
    if raw is not None and has_contents:
        raise TensorError(f"input {tensor.name!r} has both contents and raw contents")
    if raw is None and not has_contents:
        raise TensorError(f"input {tensor.name!r} has neither contents nor raw_input_contents")
    if raw is None:
        field = _TYPED_CONTENTS.get(tensor.datatype)
        if field is None:  # another datatype: refused by name when the tensor is decoded
            tensor.data = []
            return None
        contents = getattr(message.contents, field)
        _check_count(tensor, field, len(contents), limits)
        if tensor.datatype == "BYTES":
            tensor.data = list(contents)
            return None
        raw = _pixel_bytes(tensor, contents)
    tensor.parameters = {**(tensor.parameters or {}), "binary_data_size": len(raw)}
    return raw


def _check_count(tensor: RequestInput, field: str, count: int, limits: Limits) -> None:
    """Typed contents must hold the elements of the declared shape, and that shape no more
    images than `limits` allow: checked on the field's length, before any is converted.
    (`decode_images` checks the shape again, as it does for REST; these checks are cheap.)"""
    name, shape = tensor.name, tensor.shape
    if any(size < 0 for size in shape):
        raise TensorError(f"input {name!r}: negative size in shape {shape}")
    try:
        limits.check_image_count(shape[0] if shape else 0)
    except TooManyImagesError as error:
        raise TensorError(f"input {name!r}: {error.message}") from None
    expected = math.prod(shape)
    if count != expected:
        raise TensorError(
            f"input {name!r}: shape {shape} holds {expected} elements, {field} has {count}"
        )


def _pixel_bytes(tensor: RequestInput, contents: Sequence[Any]) -> bytes:
    """Typed pixels as the binary extension has them (little-endian); ~40 ns a value."""
    if tensor.datatype == "UINT8":
        try:  # uint_contents are uint32s (the protocol's UINT8 field): bytes() checks them
            return bytes(contents)
        except ValueError:
            raise TensorError(f"input {tensor.name!r}: UINT8 values must be in 0–255") from None
    return np.array(contents, np.dtype("<f4")).tobytes()


def infer_response(
    request: InferRequest, card: ModelCard, tensors: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    """The outputs asked for (all of `tensors`, the model's, by default), as raw
    little-endian contents, as Triton answers: `tritonclient.grpc`'s `as_numpy` reads them
    without a copy per element (BOOL: one byte each)."""
    names = [output.name for output in request.outputs] if request.outputs else list(tensors)
    arrays = [tensors[name] for name in names]
    described = tuple(zip(names, (array.shape for array in arrays), strict=True))
    response = pb.ModelInferResponse.FromString(_response_head(card.name, card.version, described))
    response.id = request.id or ""
    response.raw_output_contents.extend([_little_endian_bytes(array) for array in arrays])
    return response


@functools.lru_cache(maxsize=1024)
def _response_head(
    model_name: str, model_version: str, outputs: tuple[tuple[str, tuple[int, ...]], ...]
) -> bytes:
    """A response without its id and contents: the model, then each output's name, datatype
    and shape. It is the same for every answer of a batch size, so it is built once; parsing
    it costs a third of adding the output messages one by one, call after call."""
    head = pb.ModelInferResponse(model_name=model_name, model_version=model_version)
    for name, shape in outputs:
        head.outputs.add(name=name, datatype=OUTPUT_DATATYPES[name], shape=shape)
    return head.SerializeToString()


def _little_endian_bytes(array: np.ndarray) -> bytes:
    # The outputs are native arrays, so on a little-endian host (x86, ARM) they are sent as
    # they are; converting them anyway costs more than the copy itself.
    if _LITTLE_ENDIAN_HOST and array.dtype.isnative:
        return array.tobytes()
    return array.astype(array.dtype.newbyteorder("<")).tobytes()
