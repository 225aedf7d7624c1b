"""`/v1` HTTP routes, health probes and the web page: thin, over `service/api/dataplane.py`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from service.api import dataplane
from service.api.schemas import (
    HealthResponse,
    ModelDescription,
    PredictRequest,
    PredictResponse,
    ReadinessResponse,
)
from service.web.errors import documented_errors
from service.web.guards import RecognizerDep

router = APIRouter()

# The demo web page; it calls /v1/predict like any other client.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@router.get("/healthz", tags=["health"], summary="Liveness: the process serves HTTP")
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness: the model is loaded, verified and warmed up",
    response_model_exclude_none=True,
    responses={503: {"model": ReadinessResponse, "description": "Not ready; `detail` says why."}},
)
async def readyz(recognizer: RecognizerDep, response: Response) -> ReadinessResponse:
    state = recognizer.state
    if state == "ready":
        return ReadinessResponse(status="ready", model=dataplane.model_info(recognizer))
    response.status_code = 503
    detail = {"failed": recognizer.failure, "draining": "the server is shutting down"}.get(
        state, "the model is still loading"
    )
    return ReadinessResponse(status=state, detail=detail)


@router.get(
    "/v1/model",
    tags=["model"],
    summary="The model card and the artifact being served",
    responses=documented_errors(500, 503),
)
async def model(recognizer: RecognizerDep) -> ModelDescription:
    return dataplane.describe(recognizer)


async def predict(body: PredictRequest) -> Response:
    """Per image, in request order: the most likely digit, its probability and each digit's.
    With a model that has the not-a-digit output, `not_a_digit` is the calibrated
    probability that the image is no digit at all and `is_digit` is false when it reaches
    the threshold (`DIGITS_NOT_A_DIGIT_THRESHOLD`, default 0.5, or the request's
    `not_a_digit_threshold`); without it, `not_a_digit` is null and `is_digit` true."""
    # Declared for the OpenAPI document only: the gateway gives every request of this
    # operation to its own endpoint (service/api/predict.py), so FastAPI never runs this.
    raise RuntimeError("POST /v1/predict is answered by service/api/predict.py")


router.add_api_route(
    "/v1/predict",
    predict,
    methods=["POST"],
    response_model=PredictResponse,  # for the OpenAPI: the body is already JSON
    tags=["model"],
    summary="Recognize the digit in one or more images",
    responses=documented_errors(413, 415, 422, 500, 503),
)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404)
    return FileResponse(page)
