"""HTTP routes: thin wrappers that hand over to the `Predictor`."""

from __future__ import annotations

import email.message
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from service.errors import UnsupportedMediaTypeError
from service.predictor import Predictor
from service.schemas import (
    ErrorResponse,
    HealthResponse,
    ModelDescription,
    PredictRequest,
    PredictResponse,
    ReadinessResponse,
)

router = APIRouter()

# The demo web page; it calls /v1/predict like any other client.
STATIC_DIR = Path(__file__).resolve().parent / "static"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        413: "Request body larger than the configured limit.",
        415: "Body is not sent as `application/json`.",
        422: "Invalid request or image; `index` names the offending image.",
        500: "Unexpected server error.",
        503: "The model is not loaded (yet).",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


async def get_predictor(request: Request) -> Predictor:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread pool,
    # one needless thread hop per request.
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON; runs before the body is validated."""
    message = email.message.Message()
    message["content-type"] = request.headers.get("content-type", "")
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        declared = request.headers.get("content-type") or "no Content-Type"
        raise UnsupportedMediaTypeError(f"send the request as application/json (got {declared})")


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
async def readyz(predictor: PredictorDep, response: Response) -> ReadinessResponse:
    state = predictor.state
    if state == "ready":
        return ReadinessResponse(status="ready", model=predictor.model_info())
    response.status_code = 503
    detail = {"failed": predictor.failure, "draining": "the server is shutting down"}.get(
        state, "the model is still loading"
    )
    return ReadinessResponse(status=state, detail=detail)


@router.get(
    "/v1/model",
    tags=["model"],
    summary="The model card and the artifact being served",
    responses=_errors(500, 503),
)
async def model(predictor: PredictorDep) -> ModelDescription:
    return predictor.describe()


@router.post(
    "/v1/predict",
    tags=["model"],
    summary="Recognize the digit in one or more images",
    dependencies=[Depends(require_json)],
    responses=_errors(413, 415, 422, 500, 503),
)
async def predict(body: PredictRequest, predictor: PredictorDep) -> PredictResponse:
    return await predictor.predict(body)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404)
    return FileResponse(page)
