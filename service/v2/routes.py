"""Open Inference Protocol (KServe V2 / Triton HTTP/REST) routes: thin, over `OpenInference`.

Errors under `/v2` take the protocol's flat shape `{"error": "message"}`, whichever layer
refuses the request (the operations' rules say so: service/gateway/table.py). The infer
operations have their own endpoint (service/v2/infer.py); they are declared here for the
OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from service.v2.codec import HEADER_LENGTH
from service.v2.dataplane import OpenInference
from service.v2.schemas import (
    InferResponse,
    LiveResponse,
    ModelMetadata,
    ModelReadyResponse,
    ReadyResponse,
    RepositoryIndexRequest,
    RepositoryModel,
    ServerMetadata,
)
from service.web.errors import V2ErrorResponse, documented_errors

PREFIX = "/v2"
NOT_SUPPORTED = "Not supported: this server serves one model, fixed when it starts."
MODEL_NAME_EXAMPLE = "mnist-digits-cnn"

router = APIRouter(prefix=PREFIX, tags=["open inference protocol (v2)"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return documented_errors(
        *statuses, v2=True, s415="A compressed request body (Content-Encoding)."
    )


async def get_inference(request: Request) -> OpenInference:
    return OpenInference(request.app.state.recognizer)


InferenceDep = Annotated[OpenInference, Depends(get_inference)]
ModelName = Annotated[
    str, Path(description="The model card's `name`.", examples=[MODEL_NAME_EXAMPLE])
]
ModelVersion = Annotated[str, Path(description="The model card's `version`.")]

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}}},
        "description": "JSON, or with the binary tensor data extension: this JSON header "
        f"(its length in the `{HEADER_LENGTH}` header) followed by the raw tensors.",
    }
}


@router.get("", summary="Server metadata: name, version, protocol extensions")
async def server_metadata(inference: InferenceDep) -> ServerMetadata:
    return inference.server_metadata()


@router.get("/health/live", summary="Server liveness")
async def server_live() -> LiveResponse:
    return LiveResponse(live=True)


@router.get(
    "/health/ready",
    summary="Server readiness: the model is loaded",
    responses={503: {"model": ReadyResponse, "description": "Not ready."}},
)
async def server_ready(inference: InferenceDep, response: Response) -> ReadyResponse:
    ready = inference.is_ready()
    response.status_code = 200 if ready else 503
    return ReadyResponse(ready=ready)


@router.get(
    "/models/{model_name}",
    summary="Model metadata: inputs and outputs",
    responses=_errors(404, 503),
)
async def model_metadata(model_name: ModelName, inference: InferenceDep) -> ModelMetadata:
    return inference.metadata(model_name)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    summary="Model metadata of one version",
    responses=_errors(404, 503),
)
async def model_version_metadata(
    model_name: ModelName, model_version: ModelVersion, inference: InferenceDep
) -> ModelMetadata:
    return inference.metadata(model_name, model_version)


@router.get("/models/{model_name}/ready", summary="Model readiness", responses=_errors(404, 503))
async def model_ready(model_name: ModelName, inference: InferenceDep) -> ModelReadyResponse:
    return ModelReadyResponse(name=inference.ready_model(model_name).name, ready=True)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness of one version",
    responses=_errors(404, 503),
)
async def model_version_ready(
    model_name: ModelName, model_version: ModelVersion, inference: InferenceDep
) -> ModelReadyResponse:
    return ModelReadyResponse(
        name=inference.ready_model(model_name, model_version).name, ready=True
    )


@router.post(
    "/models/{model_name}/infer",
    summary="Inference: digits and probabilities for a batch of images",
    response_model=InferResponse,
    responses=_errors(400, 404, 413, 415, 503),
    openapi_extra=_INFER_BODY,
)
async def infer(model_name: ModelName) -> Response:
    """One input tensor of any name: `UINT8` (0–255) or `FP32` (0–1) pixels shaped
    `[N, 28, 28]`, `[N, 28, 28, 1]` or `[N, 784]`, already MNIST-style (white digit on
    black, centred; not preprocessed again), or `BYTES` `[N]`: image files (PNG, JPEG...),
    base64 strings in JSON or raw bytes in binary data, preprocessed like `/v1/predict`
    uploads. Outputs: `probabilities` (`FP32` `[N, 10]`) and `digit` (`INT64` `[N]`); with a
    model that has the not-a-digit output also `not_a_digit` (`FP32` `[N, 1]`, the
    calibrated probability that the image is no digit; the ten probabilities then sum to
    1 − `not_a_digit`) and `is_digit` (`BOOL` `[N, 1]`: `not_a_digit` below the threshold,
    default 0.5, or the request's `not_a_digit_threshold` parameter). All of them, or those
    requested in `outputs`. Binary tensor data (`Inference-Header-Content-Length`)
    is accepted, and returned for outputs that ask for it (`binary_data`, or the request's
    `binary_data_output`)."""
    # Declared for the OpenAPI document only: the gateway gives every request of this
    # operation to its own endpoint (service/v2/infer.py), so FastAPI never runs this.
    raise RuntimeError("POST /v2/models/{model_name}/infer is answered by service/v2/infer.py")


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    summary="Inference with one version",
    response_model=InferResponse,
    responses=_errors(400, 404, 413, 415, 503),
    openapi_extra=_INFER_BODY,
)
async def infer_version(model_name: ModelName, model_version: ModelVersion) -> Response:
    # Declared for the OpenAPI document only, as `infer` is.
    raise RuntimeError(
        "POST /v2/models/{model_name}/versions/{model_version}/infer is answered by "
        "service/v2/infer.py"
    )


@router.post(
    "/repository/index",
    summary="Model repository index: the served model and its state",
    responses=_errors(422),
)
async def repository_index(
    inference: InferenceDep, request: Annotated[RepositoryIndexRequest | None, Body()] = None
) -> list[RepositoryModel]:
    """Triton's model repository extension (`get_model_repository_index()` in
    `tritonclient`): the one model this server serves, `READY`, or `UNAVAILABLE` with the
    `reason` (loading, draining, failed). With `"ready": true`, only a ready model."""
    return inference.repository_index(ready_only=request is not None and request.ready)


@router.post(
    "/repository/models/{model_name}/load",
    summary="Load a model: not supported (400)",
    # It only ever refuses: its one documented answer is the error.
    status_code=400,
    response_model=V2ErrorResponse,
    response_description=NOT_SUPPORTED,
)
async def repository_load(model_name: ModelName, inference: InferenceDep) -> None:
    """This server serves the one model it started with; loading answers 400
    (`UNIMPLEMENTED` over gRPC)."""
    inference.refuse_repository_change("load", model_name)


@router.post(
    "/repository/models/{model_name}/unload",
    summary="Unload a model: not supported (400)",
    # It only ever refuses: its one documented answer is the error.
    status_code=400,
    response_model=V2ErrorResponse,
    response_description=NOT_SUPPORTED,
)
async def repository_unload(model_name: ModelName, inference: InferenceDep) -> None:
    """This server serves the one model it started with; unloading answers 400
    (`UNIMPLEMENTED` over gRPC)."""
    inference.refuse_repository_change("unload", model_name)
