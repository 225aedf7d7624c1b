"""One error base class, a few subclasses; the app turns each into one JSON shape.

`{"error": {"code": "invalid_image", "message": "...", "index": 3}}`
"""

from __future__ import annotations


class DigitsError(Exception):
    """Base of every error the service reports to a client."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index

    def with_index(self, index: int) -> DigitsError:
        """The same error, naming the position of the offending item in the request."""
        return type(self)(self.message, index=index)


class InvalidImageError(DigitsError):
    """Bytes that are not a decodable, usable image (bad base64, truncated, zero-size...)."""

    status_code = 422
    code = "invalid_image"


class ImageTooLargeError(DigitsError):
    """An image over the pixel limit, or a decompression bomb."""

    status_code = 422
    code = "image_too_large"


class InvalidRequestError(DigitsError):
    """A request that parses but breaks a rule the schema cannot express."""

    status_code = 422
    code = "invalid_request"


class PayloadTooLargeError(DigitsError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(DigitsError):
    status_code = 415
    code = "unsupported_media_type"


class ModelNotReadyError(DigitsError):
    status_code = 503
    code = "model_not_ready"


class ModelLoadError(Exception):
    """The model could not be loaded or does not match its card; ends the process at start-up."""
