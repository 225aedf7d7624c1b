"""Open Inference Protocol outputs: probabilities → the response's output tensors.

In plain JSON, or with the binary tensor data extension (each output's raw bytes after the
JSON header) where the request asks for it. The request's parameters were checked when it
was read (`codec.check_request`), so they are read here as given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from service.v2.schemas import InferRequest, Parameters

OUTPUT_DATATYPES = {"probabilities": "FP32", "digit": "INT64"}
# Little-endian, as the binary extension specifies.
_OUTPUT_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8")}


def encode_response(
    request: InferRequest, model_name: str, model_version: str, probabilities: np.ndarray
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    tensors = output_tensors(probabilities)
    binary_default = _flag(request.parameters, "binary_data_output", default=False)
    wanted = [(output.name, output.parameters) for output in request.outputs or ()]
    outputs, blobs = [], []
    for name, parameters in wanted or [(name, None) for name in OUTPUT_DATATYPES]:
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


def output_tensors(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the model, by name, in the datatype `OUTPUT_DATATYPES` gives it."""
    return {
        "probabilities": probabilities.astype(np.float32),
        "digit": probabilities.argmax(axis=1).astype(np.int64),
    }


def _flag(parameters: Parameters | None, key: str, *, default: bool) -> bool:
    return bool((parameters or {}).get(key, default))
