"""`/v1` predictions: request bodies in, the runtime's arrays through, response bodies out.

The one place where a `/v1` request becomes runtime calls and the arrays it returns become
the JSON of a `PredictResponse`: the JSON route, its hot path (service/api/hot_path.py)
and the upload route (file bytes) share it, so limits, errors and answers are the same by
construction.

The answer is serialized here, straight from the arrays, by pydantic's own JSON writer:
building a `Prediction` model per image only to dump it again cost more than the
inference of a 28×28 digit. `tests/service/api/test_hot_path.py` holds it to the schema.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from pydantic_core import to_json

from service.api.schemas import (
    ModelDescription,
    ModelInfo,
    PredictRequest,
    ServedArtifact,
)
from service.errors import InvalidRequestError
from service.imaging.decode import decode_base64_image
from service.runtime.limits import TooManyImagesError
from service.runtime.recognizer import Recognizer
from service.runtime.scores import is_digit

T = TypeVar("T", str, bytes)


def model_info(recognizer: Recognizer) -> ModelInfo:
    card = recognizer.model.card
    return ModelInfo(name=card.name, version=card.version)


def describe(recognizer: Recognizer) -> ModelDescription:
    model = recognizer.model
    return ModelDescription(
        served=ServedArtifact(key=model.key, artifact=model.artifact),
        card=model.card,
        limits=recognizer.limits,
    )


async def predict(recognizer: Recognizer, request: PredictRequest) -> bytes:
    """`/v1/predict`'s answer, the JSON of a `PredictResponse`: each image's base64 is
    decoded where the image is (on the loop if small, else in a worker thread)."""
    data = [image.data for image in request.images]
    ids = [image.id for image in request.images]
    return await predict_encoded(
        recognizer,
        data,
        ids,
        request.top_k,
        request.return_preprocessed,
        decode_base64_image,
        threshold=request.not_a_digit_threshold,
    )


async def predict_encoded(
    recognizer: Recognizer,
    images: Sequence[T],
    ids: Sequence[str | None],
    top_k: int,
    return_preprocessed: bool,
    read: Callable[[T], bytes] | None = None,
    *,
    threshold: float | None = None,
) -> bytes:
    """Predictions for encoded image files (`read` turns each item into the file's bytes),
    as the JSON of a `PredictResponse`; `threshold` is the request's not-a-digit threshold,
    None for the server's."""
    recognizer.model  # noqa: B018 - 503 while loading, before the request is judged
    try:
        recognizer.limits.check_image_count(len(images))
    except TooManyImagesError as error:
        raise InvalidRequestError(f"images: {error.message}") from None
    pixels, probabilities, not_a_digit = await recognizer.recognize_async(images, read)
    digits, refusals = _verdicts(not_a_digit, len(pixels), threshold, recognizer)
    predictions = [
        _prediction(image_id, row, top_k, seen if return_preprocessed else None, yes, refusal)
        for image_id, row, seen, yes, refusal in zip(
            ids, probabilities, pixels, digits, refusals, strict=True
        )
    ]
    # The card's two fields as a plain dict: a `ModelInfo` per request cost more than its JSON.
    card = recognizer.model.card
    model = {"name": card.name, "version": card.version}
    return to_json({"model": model, "predictions": predictions})


def _verdicts(
    not_a_digit: np.ndarray | None, count: int, threshold: float | None, recognizer: Recognizer
) -> tuple[list[bool], list[float | None]]:
    """Each image's `is_digit` (the runtime's rule, `service.runtime.scores.is_digit`) and
    `not_a_digit`, as the JSON answer's lists."""
    if threshold is None:
        threshold = recognizer.settings.not_a_digit_threshold
    verdicts: list[bool] = is_digit(not_a_digit, threshold, count).tolist()
    if not_a_digit is None:
        return verdicts, [None] * count
    refusals: list[Any] = not_a_digit.tolist()  # floats
    return verdicts, refusals


def _prediction(
    image_id: str | None,
    row: np.ndarray,
    top_k: int,
    pixels: np.ndarray | None,
    is_digit: bool,
    not_a_digit: float | None,
) -> dict[str, Any]:
    """One `Prediction`, as its JSON object (`preprocessed` only when asked for)."""
    probabilities: list[float] = row.tolist()
    # Best first; ties in digit order (a stable sort of the negated row).
    order: list[int] = np.argsort(-row, kind="stable")[:top_k].tolist()
    prediction: dict[str, Any] = {
        "id": image_id,
        "digit": order[0],
        "confidence": probabilities[order[0]],
        "is_digit": is_digit,
        "not_a_digit": not_a_digit,
        "top_k": [{"digit": digit, "probability": probabilities[digit]} for digit in order],
        "probabilities": probabilities,
    }
    if pixels is not None:
        prediction["preprocessed"] = png_base64(pixels)
    return prediction


def png_base64(pixels: np.ndarray) -> str:
    """What the model saw, (28, 28) floats in [0, 1], as a base64 grey PNG."""
    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
