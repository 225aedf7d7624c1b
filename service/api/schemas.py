"""Request and response bodies of the `/v1` API (these are what /docs shows); the error
bodies are shared with every route (service/web/errors.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.model_card import Artifact, ModelCard
from service.runtime.limits import Limits
from service.web.bounds import ID_MAX_LENGTH

# The most JSON values (service/web/json_body.py) one image of a valid `PredictRequest` can
# hold: its object, the commas around it and between its fields (3), its id's characters
# (each could be a `,`, `[` or `{`), and a margin for a `data:` URL's header and comma.
JSON_VALUES_PER_IMAGE = 3 + ID_MAX_LENGTH + 64
JSON_VALUES_OVERHEAD = 64  # the request object, the `images` list, `top_k`...

# Shared by the JSON body and the upload form (service/api/uploads.py).
THRESHOLD_DESCRIPTION = (
    "Answer an image as not a digit (`is_digit` false) when its `not_a_digit` probability "
    "is at least this, instead of the server's `DIGITS_NOT_A_DIGIT_THRESHOLD` (default 0.5). "
    "Ignored by a model without the not-a-digit output."
)


class _Request(BaseModel):
    # A misspelt optional field ("topk") would otherwise be silently ignored.
    # Strict: the documented types are the accepted ones (`"top_k": "3"` or
    # `"return_preprocessed": 0` would otherwise be coerced, unlike the OpenAPI says).
    model_config = ConfigDict(extra="forbid", strict=True)


class ImageInput(_Request):
    data: str = Field(
        min_length=1,
        description="The image file (PNG, JPEG, GIF, BMP, WebP, TIFF...) base64-encoded, "
        "or as a `data:` URL.",
    )
    id: str | None = Field(
        default=None,
        max_length=ID_MAX_LENGTH,
        description="Optional client id, echoed in the prediction.",
    )


class PredictRequest(_Request):
    images: list[ImageInput] = Field(
        min_length=1, description="One or more images; predictions come back in the same order."
    )
    top_k: int = Field(default=3, ge=1, le=10, description="How many best digits to list.")
    return_preprocessed: bool = Field(
        default=False,
        description="Also return, per image, the 28×28 image the model saw (base64 PNG).",
    )
    not_a_digit_threshold: float | None = Field(
        default=None, gt=0, le=1, description=THRESHOLD_DESCRIPTION
    )


def max_json_values(max_images: int) -> int:
    """The most JSON values a valid `PredictRequest` of up to `max_images` images holds."""
    return max_images * JSON_VALUES_PER_IMAGE + JSON_VALUES_OVERHEAD


class ModelInfo(BaseModel):
    name: str
    version: str


class DigitProbability(BaseModel):
    digit: int = Field(ge=0, le=9)
    probability: float


class Prediction(BaseModel):
    id: str | None = Field(description="The image's `id` from the request, or null.")
    digit: int = Field(
        ge=0, le=9, description="The most likely digit (even when `is_digit` is false)."
    )
    confidence: float = Field(
        description="Probability of `digit`: low for an image that is not a digit."
    )
    is_digit: bool = Field(
        description="Whether the image is answered as a digit: `not_a_digit` is below the "
        "threshold (`not_a_digit_threshold`, default 0.5). Always true for a model without "
        "the not-a-digit output."
    )
    not_a_digit: float | None = Field(
        description="Calibrated probability that the image is not a digit at all (a letter, "
        "a shape, a doodle...); null for a model without the not-a-digit output."
    )
    top_k: list[DigitProbability] = Field(description="The `top_k` most likely digits, best first.")
    probabilities: list[float] = Field(
        description="Probability of each digit 0–9, in digit order. They sum to 1 − "
        "`not_a_digit` (to 1 for a model without the not-a-digit output)."
    )
    preprocessed: str | None = Field(
        default=None,
        # Only present when asked for; `id` is always present (null when not given),
        # so a blanket exclude_none on the route would not do.
        exclude_if=lambda value: value is None,
        description="Base64 PNG of the 28×28 image the model saw (only with "
        "`return_preprocessed`).",
    )


class PredictResponse(BaseModel):
    model: ModelInfo
    predictions: list[Prediction]


class ServedArtifact(BaseModel):
    key: str = Field(description="The artifact's key in the card's `artifacts`.")
    artifact: Artifact


class ModelDescription(BaseModel):
    served: ServedArtifact = Field(description="The artifact this process runs.")
    card: ModelCard
    limits: Limits = Field(description="What one request may hold; more is refused.")


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    status: Literal["ready", "loading", "draining", "failed"]
    detail: str | None = Field(default=None, description="Why the service is not ready.")
    model: ModelInfo | None = None
