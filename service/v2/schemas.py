"""Bodies of the Open Inference Protocol (KServe V2 / Triton REST), as the spec names them.

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ — field
names and meanings follow the spec exactly so that generic clients (`tritonclient`,
KServe's `InferenceRESTClient`, MLServer's codecs) read them without adapters.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.runtime.limits import Limits
from service.web.bounds import ID_MAX_LENGTH

Parameters = dict[str, Any]
# Twice the most this model takes ([N, 28, 28, 1]): a bound on the shape an error quotes.
MAX_DIMENSIONS = 8


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(
        description="Protocol extensions supported: `binary_tensor_data` (binary inputs and "
        "outputs after the JSON header, length in the `Inference-Header-Content-Length` header)."
    )


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(description="`BOOL`, `UINT8`, `INT64`, `FP32`, `BYTES`...")
    shape: list[int] = Field(description="Dimensions; -1 is a variable size (the batch).")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Limits | None = Field(
        default=None,
        description="What one request may hold (as MLServer puts a model's parameters here); "
        "more is refused.",
    )


class RequestInput(BaseModel):
    name: str = Field(max_length=ID_MAX_LENGTH, description="Any name; the model has one input.")
    shape: list[int] = Field(
        max_length=MAX_DIMENSIONS,
        description="`[N, 28, 28]`, `[N, 28, 28, 1]` or `[N, 784]` for pixels; `[N]` for BYTES.",
    )
    datatype: str = Field(
        description="`UINT8` (0–255) or `FP32` (0–1) pixels of MNIST-style digits (white on "
        "black, centred, not preprocessed again), or `BYTES`: encoded image files (PNG, JPEG...), "
        "base64 strings in JSON, raw bytes in binary data; these are preprocessed like "
        "`/v1/predict` uploads."
    )
    parameters: Parameters | None = Field(
        default=None, description="`binary_data_size`: the tensor is in the binary part."
    )
    data: list[Any] | None = Field(
        default=None, description="Row-major elements, flat or nested (absent with binary data)."
    )


class RequestOutput(BaseModel):
    name: str = Field(
        max_length=ID_MAX_LENGTH,
        description="`probabilities` or `digit`; `not_a_digit` or `is_digit` with a model that "
        "has the not-a-digit output (the model metadata lists the outputs).",
    )
    parameters: Parameters | None = Field(
        default=None, description="`binary_data`: return this output in the binary part."
    )


class InferRequest(BaseModel):
    model_config = ConfigDict(title="InferRequest")

    id: str | None = Field(
        default=None, max_length=ID_MAX_LENGTH, description="Echoed in the response."
    )
    parameters: Parameters | None = Field(
        default=None,
        description="`binary_data_output`: every output in binary unless it says. "
        "`not_a_digit_threshold` (a number, 0 < t ≤ 1): `is_digit` is false when "
        "`not_a_digit` is at least this, instead of the server's "
        "`DIGITS_NOT_A_DIGIT_THRESHOLD` (default 0.5).",
    )
    inputs: list[RequestInput] = Field(description="Exactly one input: the images.")
    outputs: list[RequestOutput] | None = Field(
        default=None, description="Outputs to return, in this order; all when absent."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None, description="Flat row-major elements (absent for binary outputs)."
    )


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class RepositoryIndexRequest(BaseModel):
    repository_name: str | None = Field(
        default=None, description="Ignored: this server has one repository."
    )
    ready: bool = Field(
        default=False, strict=True, description="Only the models ready for inference."
    )


class RepositoryModel(BaseModel):
    """One entry of the model repository index (Triton's model repository extension)."""

    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = Field(default="", description="Why the model is unavailable, if it is.")


# Components the OpenAPI document must carry though no route parses them with FastAPI
# (the infer body is read raw, to take binary tensor data).
OPENAPI_MODELS = (InferRequest,)
