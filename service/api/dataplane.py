"""`/v1` predictions: request bodies in, the runtime's arrays through, response bodies out.

The one place where a `/v1` request becomes runtime calls and the arrays it returns become
`Prediction`s: the JSON route (base64 images) and the upload route (file bytes) share it,
so limits, errors and answers are the same by construction.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from PIL import Image

from service.api.schemas import (
    DigitProbability,
    ModelDescription,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
    ServedArtifact,
)
from service.errors import InvalidRequestError
from service.imaging.decode import decode_base64_image
from service.middleware.metrics import IMAGES_PER_REQUEST
from service.runtime.recognizer import Recognizer

T = TypeVar("T", str, bytes)


def model_info(recognizer: Recognizer) -> ModelInfo:
    card = recognizer.model.card
    return ModelInfo(name=card.name, version=card.version)


def describe(recognizer: Recognizer) -> ModelDescription:
    model = recognizer.model
    return ModelDescription(
        served=ServedArtifact(key=model.key, artifact=model.artifact), card=model.card
    )


async def predict(recognizer: Recognizer, request: PredictRequest) -> PredictResponse:
    """`/v1/predict`: each image's base64 is decoded where the image is (a worker thread)."""
    data = [image.data for image in request.images]
    ids = [image.id for image in request.images]
    return await predict_encoded(
        recognizer, data, ids, request.top_k, request.return_preprocessed, decode_base64_image
    )


async def predict_encoded(
    recognizer: Recognizer,
    images: Sequence[T],
    ids: Sequence[str | None],
    top_k: int,
    return_preprocessed: bool,
    read: Callable[[T], bytes] | None = None,
) -> PredictResponse:
    """Predictions for encoded image files (`read` turns each item into the file's bytes)."""
    recognizer.model  # noqa: B018 - 503 while loading, before the request is judged
    limit = recognizer.settings.max_images
    if len(images) > limit:
        raise InvalidRequestError(f"images: at most {limit} images per request, got {len(images)}")
    IMAGES_PER_REQUEST.observe(len(images))
    pixels, probabilities = await recognizer.recognize_async(images, read)
    info = model_info(recognizer)
    predictions = [
        _prediction(image_id, row, top_k, seen if return_preprocessed else None)
        for image_id, row, seen in zip(ids, probabilities, pixels, strict=True)
    ]
    return PredictResponse(model=info, predictions=predictions)


def _prediction(
    image_id: str | None, row: np.ndarray, top_k: int, pixels: np.ndarray | None
) -> Prediction:
    order = np.argsort(-row, kind="stable")[:top_k]
    best = int(order[0])
    return Prediction(
        id=image_id,
        digit=best,
        confidence=float(row[best]),
        top_k=[DigitProbability(digit=int(d), probability=float(row[d])) for d in order],
        probabilities=row.tolist(),
        preprocessed=None if pixels is None else png_base64(pixels),
    )


def png_base64(pixels: np.ndarray) -> str:
    """What the model saw, (28, 28) floats in [0, 1], as a base64 grey PNG."""
    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
