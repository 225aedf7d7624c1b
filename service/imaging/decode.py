"""Turning untrusted upload bytes into a decoded Pillow image, safely.

Every failure becomes an `InvalidImageError` or `ImageTooLargeError`: for any input
bytes, nothing else escapes. Size limits are checked from the header, before any
pixel data is decoded, so a decompression bomb costs a header parse and nothing more.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from PIL import Image, ImageFile, ImageOps

from service.errors import ImageTooLargeError, InvalidImageError
from service.imaging.png import png_size
from service.settings import DEFAULT_MAX_PIXELS

# Formats with mature, fuzzed decoders that real clients send. Everything else Pillow
# can read (PSD, EPS via Ghostscript, exotic raw formats...) is attack surface with no
# use here, so `Image.open` is told to try only these.
SUPPORTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

# A JPEG decodes at 1/2, 1/4 or 1/8 scale almost for free (libjpeg skips the DCT work).
# Asking for at least this many pixels on the shorter side keeps a digit that fills a
# reasonable part of the photo well above the 20-pixel box it ends up in.
DRAFT_MIN_SIDE = 112

# Upper bound on the memory one image takes while it is decoded and preprocessed, in
# bytes per declared pixel (width × height ≤ DIGITS_MAX_PIXELS). The costliest decoder is
# WebP's, lossy or lossless, at 12.2 (libwebp's two canvases and the frame it hands over,
# see `_load_webp`); progressive CMYK JPEG takes 8, an EXIF-rotated RGBA PNG 8, other
# PNG, TIFF, BMP and GIF 1.4-5.3, baseline JPEG almost nothing (decoded at 1/8 scale).
# Measured as a real server's peak RSS: tests/service/imaging/test_memory_server.py.
DECODE_BYTES_PER_PIXEL = 13

# Frame layouts of Pillow's WebP decoder that map straight into an image (4 bytes a pixel).
_WEBP_FRAME_MODES = ("RGBA", "RGBX")
_EXIF_ORIENTATION = 0x0112
_WHITESPACE = re.compile(r"\s+")
# Standard and URL-safe alphabets both accepted, padding optional: clients differ.
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def decode_base64_image(text: str) -> bytes:
    """Bytes from plain base64 (standard or URL-safe, padding optional) or a data: URL."""
    try:
        # What nearly every client sends, canonical padded base64, decoded at C speed;
        # anything else (whitespace, URL-safe, no padding, a data: URL, errors) below.
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    else:
        if data:
            return data
    payload = text.strip()
    if payload[:5].lower() == "data:":
        header, comma, payload = payload.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise InvalidImageError(
                "image data URL is not valid base64 (expected 'data:[type];base64,...')"
            )
        # The media type is not trusted either way: the bytes are sniffed by the decoder.
    payload = _WHITESPACE.sub("", payload)
    if not payload:
        raise InvalidImageError("image is empty: not valid base64")
    if not _BASE64.fullmatch(payload) or len(payload.rstrip("=")) % 4 == 1:
        raise InvalidImageError("image is not valid base64")
    payload = payload.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidImageError(f"image is not valid base64 ({error})") from error
    if not data:
        raise InvalidImageError("image is empty: not valid base64")
    return data


def declared_pixels(data: bytes) -> int | None:
    """Width × height from the header alone (no pixel decoding), None if it does not parse.

    Lets a caller route work by image size before paying for the decode: a few KB of
    PNG can declare millions of pixels.
    """
    size = png_size(data)  # the common case, read from the bytes directly
    if size is not None:
        return size[0] * size[1]
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
            width, height = image.size
    except Exception:  # any header Pillow refuses; load_image reports it properly
        return None
    return width * height


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an upload (first frame of animations), checking its size before decoding.

    JPEGs come back in mode "L", large ones decoded at a reduced scale (see
    `DRAFT_MIN_SIDE`); everything else at full size in its own mode. EXIF orientation
    is applied, since phone photos are stored sideways with a tag saying so.
    """
    if not data:
        raise InvalidImageError("image is empty")
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.UnidentifiedImageError as error:
        raise InvalidImageError(
            "not a recognised image (unknown format or corrupt header); supported formats: "
            + ", ".join(SUPPORTED_FORMATS)
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own global limit fired first (the warning arrives as an exception
        # only when warnings are errors); either way the answer is the same.
        raise ImageTooLargeError(f"image is too large: {error}") from error
    except Exception as error:  # any decoder bug on hostile bytes must not become a 500
        raise InvalidImageError(f"cannot read image header: {_describe(error)}") from error

    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"image has zero size ({width}×{height})")
    # Pillow's global limit is honoured as a ceiling too, so a process that lowered it
    # keeps its protection; but ours applies even if someone set it to None.
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise ImageTooLargeError(
            f"image is {width}×{height} = {width * height} pixels, over the limit of {limit}"
        )

    # LOAD_TRUNCATED_IMAGES is global Pillow state; if some other code turned it on,
    # truncated uploads would silently decode as grey. Refuse to run in that state
    # rather than mutate it behind the other caller's back.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for safe decoding")

    try:
        if image.format in ("JPEG", "MPO"):
            # Decoding straight to grey skips the colour conversion, and big photos
            # decode at 1/2, 1/4 or 1/8 scale: most of the cost of a JPEG, saved.
            large = min(width, height) >= 2 * DRAFT_MIN_SIDE
            image.draft("L", (DRAFT_MIN_SIDE, DRAFT_MIN_SIDE) if large else None)
        image = _load_webp(image) if image.format == "WEBP" else _load(image)
        if image.format in ("JPEG", "WEBP", "TIFF", "PNG") and _needs_transpose(image):
            image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(f"image is too large: {error}") from error
    except Exception as error:  # truncated, corrupt, unsupported variant, out of memory...
        raise InvalidImageError(f"cannot decode image: {_describe(error)}") from error
    return image


def _load(image: Image.Image) -> Image.Image:
    image.load()
    return image


def _load_webp(image: Image.Image) -> Image.Image:
    """The first frame, without the copies `load()` would make and keep.

    Pillow decodes WebP through libwebp's animation decoder, which composes frames on
    two canvases of 4 bytes a pixel that live as long as the image, hands the frame over
    as a third copy, and `load()` unpacks that into a fourth. Taking the frame from the
    decoder and dropping the decoder at once leaves one copy: 12 instead of 16 bytes a
    pixel at peak, 4 instead of 12 once decoded.
    """
    rawmode = getattr(image, "rawmode", None)
    decoder: Any = getattr(image, "_decoder", None)
    if not hasattr(decoder, "get_next") or rawmode not in _WEBP_FRAME_MODES:
        return _load(image)  # a Pillow whose WebP plugin works otherwise: its own way
    frame = decoder.get_next()
    # Dropping the last references to the decoder frees its two canvases now.
    image._decoder = decoder = None  # type: ignore[attr-defined]
    if frame is None:
        raise EOFError("failed to decode the first frame of the WebP file")
    # Mapped, not copied; an opaque image is then converted to "RGB", as `load()` gives.
    mapped = Image.frombuffer(rawmode, image.size, frame[0], "raw", rawmode, 0, 1)
    decoded = mapped if rawmode == "RGBA" else mapped.convert("RGB")
    decoded.info = dict(image.info)
    decoded.format = image.format  # a plain Image has it as None
    image.close()
    return decoded


def _needs_transpose(image: Image.Image) -> bool:
    # Parsing EXIF only when the file carries some keeps the common case free.
    if "exif" not in image.info and image.format != "TIFF":
        return False
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return orientation in range(2, 9)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
