"""`/v1` HTTP routes, health probes and the web page: thin, over `service/api/dataplane.py`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Response
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
from service.web.guards import RecognizerDep, require_json

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


@router.post(
    "/v1/predict",
    tags=["model"],
    summary="Recognize the digit in one or more images",
    dependencies=[Depends(require_json)],
    responses=documented_errors(413, 415, 422, 500, 503),
)
async def predict(body: PredictRequest, recognizer: RecognizerDep) -> PredictResponse:
    return await dataplane.predict(recognizer, body)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404)
    return FileResponse(page)
