"""Open Inference Protocol outputs: the model's scores → the response's output tensors.

In plain JSON, or with the binary tensor data extension (each output's raw bytes after the
JSON header) where the request asks for it. The request's parameters were checked when it
was read (`codec.check_request`), so they are read here as given.

Every model has `probabilities` and `digit`; a model with the not-a-digit output
(`ModelCard.not_a_digit`) has `not_a_digit` and `is_digit` too, each `[N, 1]`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from service.model_card import NUM_CLASSES, ModelCard
from service.runtime.scores import Scores, is_digit
from service.v2.schemas import InferRequest, MetadataTensor, Parameters

OUTPUT_DATATYPES = {
    "probabilities": "FP32",
    "digit": "INT64",
    "not_a_digit": "FP32",
    "is_digit": "BOOL",
}
# Dimensions after the batch's, as the model metadata lists them.
_OUTPUT_SHAPES = {"probabilities": [NUM_CLASSES], "digit": [], "not_a_digit": [1], "is_digit": [1]}
DIGIT_OUTPUTS = ("probabilities", "digit")
NOT_A_DIGIT_OUTPUTS = ("not_a_digit", "is_digit")
# Little-endian, as the binary extension specifies; BOOL is one byte per element.
_OUTPUT_DTYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "INT64": np.dtype("<i8"),
    "BOOL": np.dtype(np.bool_),
}


def model_outputs(card: ModelCard) -> tuple[str, ...]:
    """The names of the outputs `card`'s model has, in the order they are returned."""
    return DIGIT_OUTPUTS + (NOT_A_DIGIT_OUTPUTS if card.not_a_digit is not None else ())


def output_metadata(card: ModelCard) -> list[MetadataTensor]:
    """The model metadata's `outputs`: -1 for the batch's dimension."""
    return [
        MetadataTensor(
            name=name, datatype=OUTPUT_DATATYPES[name], shape=[-1, *_OUTPUT_SHAPES[name]]
        )
        for name in model_outputs(card)
    ]


def encode_response(
    request: InferRequest, model_name: str, model_version: str, tensors: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    binary_default = _flag(request.parameters, "binary_data_output", default=False)
    wanted = [(output.name, output.parameters) for output in request.outputs or ()]
    outputs, blobs = [], []
    for name, parameters in wanted or [(name, None) for name in tensors]:
        array, datatype = tensors[name], OUTPUT_DATATYPES[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if _flag(parameters, "binary_data", default=binary_default):
            blob = array.astype(_OUTPUT_DTYPES[datatype], copy=False).tobytes()
            output["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            output["data"] = np.ascontiguousarray(array).ravel()
        outputs.append(output)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    return (header, None) if not blobs else (header + b"".join(blobs), len(header))


def output_tensors(scores: Scores, threshold: float) -> dict[str, np.ndarray]:
    """Every output of the model, by name, in the order and the datatype `OUTPUT_DATATYPES`
    gives it; an image is a digit when its not-a-digit probability is below `threshold`."""
    probabilities, not_a_digit = scores
    tensors = {
        "probabilities": probabilities.astype(np.float32),
        "digit": probabilities.argmax(axis=1).astype(np.int64),
    }
    if not_a_digit is not None:
        tensors["not_a_digit"] = not_a_digit.astype(np.float32)[:, np.newaxis]
        tensors["is_digit"] = is_digit(not_a_digit, threshold, len(not_a_digit))[:, np.newaxis]
    return tensors


def _flag(parameters: Parameters | None, key: str, *, default: bool) -> bool:
    return bool((parameters or {}).get(key, default))
