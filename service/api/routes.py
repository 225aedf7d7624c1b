"""`/v1` HTTP routes, health probes and the web page: thin, over `service/api/dataplane.py`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from service.api import dataplane
from service.api.schemas import (
    HealthResponse,
    ModelDescription,
    PredictRequest,
    PredictResponse,
    ReadinessResponse,
    max_json_values,
)
from service.errors import InvalidRequestError
from service.web.errors import documented_errors
from service.web.guards import RecognizerDep, require_json
from service.web.json_body import JsonBodyError, TooManyJsonValuesError, check_json_body_async
from service.web.responses import json_response

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


class _JudgedJsonRoute(APIRoute):
    """A route whose JSON body is judged before FastAPI parses it: declared as JSON (415),
    UTF-8, and holding no more JSON values than a request of `max_images` images can
    (service/web/json_body.py), so that no body builds more objects than that (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        parse_and_handle = super().get_route_handler()

        async def judge_then_handle(request: Request) -> Response:
            await require_json(request)
            max_images = request.app.state.settings.max_images
            try:
                await check_json_body_async(await request.body(), max_json_values(max_images))
            except TooManyJsonValuesError as error:
                # The limit's wording, which clients (digits-score) learn the limit from.
                raise InvalidRequestError(
                    f"images: at most {max_images} images per request; {error}"
                ) from None
            except JsonBodyError as error:
                raise InvalidRequestError(f"request body: {error}") from None
            # FastAPI reads the body from `request`, where it is now kept.
            return await parse_and_handle(request)

        return judge_then_handle


async def predict(body: PredictRequest, recognizer: RecognizerDep) -> Response:
    """Per image, in request order: the most likely digit, its probability and each digit's.
    With a model that has the not-a-digit output, `not_a_digit` is the calibrated
    probability that the image is no digit at all and `is_digit` is false when it reaches
    the threshold (`DIGITS_NOT_A_DIGIT_THRESHOLD`, default 0.5, or the request's
    `not_a_digit_threshold`); without it, `not_a_digit` is null and `is_digit` true."""
    # Usually answered by the hot path (service/api/hot_path.py) before routing; here are
    # the requests it hands over: those to be refused, with the framework's own errors.
    return json_response(await dataplane.predict(recognizer, body))


router.add_api_route(
    "/v1/predict",
    predict,
    methods=["POST"],
    response_model=PredictResponse,  # for the OpenAPI: the body is already JSON
    tags=["model"],
    summary="Recognize the digit in one or more images",
    responses=documented_errors(413, 415, 422, 500, 503),
    route_class_override=_JudgedJsonRoute,
)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404)
    return FileResponse(page)
