"""gRPC inference messages ⇄ the dataplane's own request model, and errors → status codes.

A `ModelInferRequest` becomes the `InferRequest` the REST `/v2` route parses from JSON, its
`raw_input_contents` the binary data the REST binary extension carries: from there, the
same code (service/v2/codec.py) checks, decodes and answers both protocols.
"""

from __future__ import annotations

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
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise TensorError(
            f"{len(raw)} raw_input_contents for {len(message.inputs)} inputs: "
            "send one per input, in the order of inputs"
        )
    inputs = []
    for index, tensor in enumerate(message.inputs):
        tensor_parameters = parameters(tensor.parameters)
        data: list[object] | None = None
        if raw:
            if tensor.HasField("contents"):
                raise TensorError(f"input {tensor.name!r} has both contents and raw contents")
            # The binary extension's way of saying "my data is in the binary part".
            tensor_parameters = {**(tensor_parameters or {}), "binary_data_size": len(raw[index])}
        elif not tensor.HasField("contents"):
            raise TensorError(f"input {tensor.name!r} has neither contents nor raw_input_contents")
        else:
            field = _TYPED_CONTENTS.get(tensor.datatype)
            # Another datatype is refused by name when the tensor is decoded.
            data = list(getattr(tensor.contents, field)) if field is not None else []
        inputs.append(
            RequestInput.model_construct(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                parameters=tensor_parameters,
                data=data,
            )
        )
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


def infer_response(
    request: InferRequest, card: ModelCard, tensors: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    """The outputs asked for (all of `tensors`, the model's, by default), as raw
    little-endian contents, as Triton answers: `tritonclient.grpc`'s `as_numpy` reads them
    without a copy per element (BOOL: one byte each)."""
    response = pb.ModelInferResponse(
        model_name=card.name, model_version=card.version, id=request.id or ""
    )
    for name in [output.name for output in request.outputs or ()] or list(tensors):
        array = tensors[name]
        response.outputs.add(name=name, datatype=OUTPUT_DATATYPES[name], shape=array.shape)
        response.raw_output_contents.append(
            array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        )
    return response
