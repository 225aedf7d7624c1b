"""The bounds a request must keep, as one object: checked in one place each, and
published (`GET /v1/model`, the `/v2` model metadata) so that clients read them instead
of learning them from refusals."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidRequestError
from service.settings import Settings


class Limits(BaseModel):
    """What one request may hold (the settings that bound it, `DIGITS_*`)."""

    model_config = ConfigDict(frozen=True)

    max_images: int = Field(description="Most images in one request (`DIGITS_MAX_IMAGES`).")
    max_body_bytes: int = Field(
        description="Largest request body, in bytes (`DIGITS_MAX_BODY_BYTES`)."
    )
    max_pixels: int = Field(description="Most pixels in one decoded image (`DIGITS_MAX_PIXELS`).")

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_images=settings.max_images,
            max_body_bytes=settings.max_body_bytes,
            max_pixels=settings.max_pixels,
        )

    def check_image_count(self, count: int) -> None:
        """`TooManyImagesError` for a request of more than `max_images` images; both APIs
        check here, before any image is decoded."""
        if count > self.max_images:
            raise TooManyImagesError(f"at most {self.max_images} images per request, got {count}")


class TooManyImagesError(InvalidRequestError):
    """A request of more images than `DIGITS_MAX_IMAGES`; each API names where they are."""
