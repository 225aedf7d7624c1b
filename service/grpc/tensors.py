"""gRPC inference messages ⇄ the dataplane's own request model, and errors → status codes.

A `ModelInferRequest` becomes the `InferRequest` the REST `/v2` route parses from JSON, its
`raw_input_contents` the binary data the REST binary extension carries: from there, the
same code (service/v2/codec.py) checks, decodes and answers both protocols.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Collection, Mapping

import grpc
import numpy as np

from service.errors import DigitsError
from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.model_card import ModelCard
from service.v2.codec import TensorError, check_request
from service.v2.outputs import OUTPUT_DATATYPES
from service.v2.schemas import InferRequest, Parameters, RequestInput, RequestOutput
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
    message: pb.ModelInferRequest, known_outputs: Collection[str]
) -> tuple[InferRequest, bytes | None]:
    """The request as `InferRequest`, and its input's raw contents, checked like REST's
    against the model's outputs (service/v2/outputs.py: `model_outputs`)."""
    # Each read of a repeated bytes field's element is a new copy of it (upb keeps the data
    # in its arena; 0.7 ms for 8 MB): one list, so that each is copied once, not twice.
    raw = list(message.raw_input_contents)
    tensors = message.inputs
    if raw and len(raw) != len(tensors):
        raise TensorError(
            f"{len(raw)} raw_input_contents for {len(tensors)} inputs: "
            "send one per input, in the order of inputs"
        )
    inputs = [
        _request_input(tensor, raw[index] if raw else None) for index, tensor in enumerate(tensors)
    ]
    outputs = [
        RequestOutput.model_construct(name=output.name, parameters=parameters(output.parameters))
        for output in message.outputs
    ]
    request = InferRequest.model_construct(
        id=message.id or None,
        parameters=parameters(message.parameters),
        inputs=inputs,
        outputs=outputs or None,
    )
    return check_request(request, raw[0] if len(raw) == 1 else b"", known_outputs)


def _request_input(
    tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None
) -> RequestInput:
    """One input tensor as REST has it: typed contents as `data`, raw contents as binary
    data of `binary_data_size` bytes (the binary extension's way of saying so)."""
    tensor_parameters = parameters(tensor.parameters)
    has_contents = tensor.HasField("contents")
    data: list[object] | None = None
    if raw is not None:
        if has_contents:
            raise TensorError(f"input {tensor.name!r} has both contents and raw contents")
        tensor_parameters = {**(tensor_parameters or {}), "binary_data_size": len(raw)}
    elif not has_contents:
        raise TensorError(f"input {tensor.name!r} has neither contents nor raw_input_contents")
    else:
        field = _TYPED_CONTENTS.get(tensor.datatype)
        # Another datatype is refused by name when the tensor is decoded.
        data = list(getattr(tensor.contents, field)) if field is not None else []
    return RequestInput.model_construct(
        name=tensor.name,
        shape=list(tensor.shape),
        datatype=tensor.datatype,
        parameters=tensor_parameters,
        data=data,
    )


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
