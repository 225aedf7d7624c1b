"""What can go wrong with a caller's input or the model, as exceptions with stable codes.

Raised by the runtime and the image pipeline, which know nothing of HTTP: the web layer
(service/web/errors.py) gives each its status and its protocol's JSON shape, e.g.
`{"error": {"code": "invalid_image", "message": "...", "index": 3}}` under `/v1`.
"""

from __future__ import annotations


class DigitsError(Exception):
    """Base of every error reported to a caller; `index` names the offending item."""

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

    code = "invalid_image"


class ImageTooLargeError(DigitsError):
    """An image over the pixel limit, or a decompression bomb."""

    code = "image_too_large"


class InvalidRequestError(DigitsError):
    """A request that parses but breaks a rule the schema cannot express."""

    code = "invalid_request"


class ModelNotReadyError(DigitsError):
    """The model is still loading, or failed to load."""

    code = "model_not_ready"


class OverloadedError(DigitsError):
    """Too much work in progress: the request was refused before any of it was done."""

    code = "overloaded"


class ModelLoadError(Exception):
    """The model could not be loaded or does not match its card; ends the process at start-up."""
