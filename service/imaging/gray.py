"""A decoded image of any mode and size → one 8-bit grey image at working size.

This is where a big upload stops being big: the result's shorter side is at most
2 × `WORK_MIN_SIDE` - 1 pixels (unless the image was already smaller). Each conversion
(mode to grey, transparency over white, dither blur) is done in horizontal stripes
of at most `STRIPE_PIXELS`, each reduced as soon as it is made, so the only full-size
buffer is the decoded image itself: no full-size copy in RGBA, float or even 8-bit grey.

Every step is per pixel or (the blur) reads a few neighbouring rows, which the stripes
overlap by, and stripes hold whole reduction blocks: the result is pixel for pixel the
one of converting the whole image at once (tests/service/imaging/test_gray.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageFilter

from service.errors import InvalidImageError
from service.imaging.decode import DRAFT_MIN_SIDE
from service.model_card import IMAGE_SIDE

# Working resolution: big images are box-reduced so that the shorter side stays at
# least this long; the digit is analysed there and still ends up ≥ 4× its 20-px box.
WORK_MIN_SIDE = DRAFT_MIN_SIDE

# Full-size pixels converted at a time. Images up to this size are converted in one
# piece (as small uploads always are); bigger ones in stripes, whose temporary copies
# then cost a few MiB instead of a multiple of the image.
STRIPE_PIXELS = 1 << 20

_WIDE_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Modes whose transparency we honour; "La"/"RGBa" are premultiplied variants.
_ALPHA_MODES = {"LA": "LA", "La": "LA", "PA": "LA", "RGBA": "RGBA", "RGBa": "RGBA"}
_LEVELS = np.arange(256, dtype=np.float32)

Convert = Callable[[Image.Image], Image.Image]


def working_gray(image: Image.Image) -> Image.Image:
    """An 8-bit "L" image at working size whose contrast shows the digit, with
    transparency already resolved (either polarity is fine here)."""
    mode = image.mode
    try:
        if mode in _ALPHA_MODES or ("transparency" in image.info and mode in ("P", "L", "RGB")):
            return _from_layered(image, _ALPHA_MODES.get(mode, "RGBA"))
        if mode in _WIDE_MODES:
            return _from_wide(image)
        if mode == "LAB":
            return _reduced(image, _lightness)
        if mode == "L":
            return _reduce(image)
        # Pillow's luma, from 1, P, RGB, CMYK, YCbCr, HSV...
        return _reduced(image, _to_gray, blur=_dither_blur(mode, image.size))
    except Exception as error:  # a mode Pillow cannot turn into grey levels
        raise InvalidImageError(f"unsupported image mode {mode!r}: {error}") from error


def _from_layered(image: Image.Image, layered: str) -> Image.Image:
    """Images with an alpha channel, or a transparent colour (turned into one)."""

    def to_layered(part: Image.Image) -> Image.Image:
        return part if part.mode == layered else part.convert(layered)

    def over_white(part: Image.Image) -> Image.Image:
        colour = to_layered(part)
        colour = colour if colour.mode == "RGBA" else colour.convert("RGBA")
        white = Image.new("RGBA", part.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, colour).convert("L")

    if image.mode in _ALPHA_MODES:  # alpha is the last band: no conversion needed
        alpha_histogram = image.histogram()[-256:]
    else:
        alpha_histogram = [0] * 256
        for _, part in _stripes(image, factor=1):
            counts = to_layered(part).getchannel("A").histogram()
            alpha_histogram = [a + b for a, b in zip(alpha_histogram, counts, strict=True)]
    if any(alpha_histogram[:250]):  # some pixels are really see-through
        alpha = _reduced(image, lambda part: to_layered(part).getchannel("A"))
        if median(border_histogram(alpha)) < 128:
            # Strokes on a transparent canvas: the paint *is* the digit, whatever its
            # colour (browsers even store transparent pixels as black), so alpha is the
            # ink signal: light on dark, like MNIST.
            return alpha
        # An opaque picture with some transparent parts: show it the way a browser
        # would, over white, and treat it as any other photo.
        return _reduced(image, over_white)
    # An alpha channel that is not used.
    blur = _dither_blur(image.mode, image.size)
    return _reduced(image, lambda part: to_layered(part).convert("L"), blur=blur)


def _to_gray(part: Image.Image) -> Image.Image:
    return part.convert("L")


def _lightness(part: Image.Image) -> Image.Image:
    return part.getchannel("L")  # Pillow cannot convert LAB; lightness is it


def _dither_blur(mode: str, size: tuple[int, int]) -> int:
    """Box-blur radius for the grey version of an image in `mode` (0 for none).

    Bilevel and palette images of photos are usually dithered: a box mean turns the dot
    pattern back into grey before anything is measured (bilevel dots are coarser, so
    there the box grows with the image)."""
    if mode not in ("1", "P", "PA") or min(size) < 2 * IMAGE_SIDE:
        return 0
    return max(1, round(min(size) / 50)) if mode == "1" else 1


def _from_wide(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float images → 8-bit, by the range the values use."""
    values = np.asarray(_reduced(image, lambda part: part.convert("F")))
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max())
    if image.mode == "F" and top <= 1.0:
        scale = 255.0  # float images are usually in [0, 1]
    elif top <= 255:
        scale = 1.0  # 8-bit values in a wider container, as Pillow's own convert() makes
    elif top <= 65535:
        scale = 255 / 65535  # 16-bit data
    else:
        scale = 255 / top
    scaled = np.clip(values * np.float32(scale) + np.float32(0.5), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8))


def _reduction(size: tuple[int, int]) -> int:
    # Box reduction in C is cheap and anti-aliased; it keeps the work on big PNG
    # photos and scans proportional to the working size, not the upload size.
    factor = min(size) // WORK_MIN_SIDE
    return factor if factor >= 2 else 1


def _reduce(image: Image.Image) -> Image.Image:
    factor = _reduction(image.size)
    return image.reduce(factor) if factor > 1 else image


def _reduced(image: Image.Image, convert: Convert, *, blur: int = 0) -> Image.Image:
    """`convert` (then a box blur of `blur` px, if any) applied to the whole image, then
    reduced to working size; done in stripes when the image is big."""

    def finish(part: Image.Image) -> Image.Image:
        part = convert(part)
        return part.filter(ImageFilter.BoxBlur(blur)) if blur else part

    factor = _reduction(image.size)
    width, height = image.size
    if width * height <= STRIPE_PIXELS:
        return _reduce_by(finish(image), factor)
    result: Image.Image | None = None
    for top, part in _stripes(image, factor=factor, overlap=blur, convert=finish):
        small = _reduce_by(part, factor)
        if result is None:
            result = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        result.paste(small, (0, top // factor))
    assert result is not None  # an image has at least one row
    return result


def _reduce_by(image: Image.Image, factor: int) -> Image.Image:
    return image.reduce(factor) if factor > 1 else image


def _stripes(
    image: Image.Image, *, factor: int, overlap: int = 0, convert: Convert | None = None
) -> Iterator[tuple[int, Image.Image]]:
    """(first row, converted stripe) over the image, top to bottom. Stripes are whole
    multiples of `factor` rows (so reduction blocks never straddle two), converted with
    `overlap` extra rows on each side that are then cut off again, so that a filter
    reading that far sees the same neighbours as on the whole image."""
    width, height = image.size
    rows = max(1, STRIPE_PIXELS // (width * factor)) * factor
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        first, last = max(0, top - overlap), min(height, bottom + overlap)
        part = image.crop((0, first, width, last))
        if convert is not None:
            part = convert(part)
        if (first, last) != (top, bottom):
            part = part.crop((0, top - first, width, bottom - first))
        yield top, part


def border_histogram(gray: Image.Image) -> np.ndarray:
    """Histogram of the outer frame (5 % of the shorter side, at least 1 px), where
    there is usually only background."""
    width, height = gray.size
    frame = max(1, round(min(width, height) * 0.05))
    mask = Image.new("L", gray.size, 255)
    if width > 2 * frame and height > 2 * frame:
        mask.paste(0, (frame, frame, width - frame, height - frame))
    return np.array(gray.histogram(mask), dtype=np.float32)


def median(histogram: np.ndarray, values: np.ndarray = _LEVELS) -> float:
    """Median of a distribution given as counts over `values` (any order)."""
    if values is not _LEVELS:
        order = np.argsort(values, kind="stable")
        histogram, values = histogram[order], values[order]
    cumulative = np.cumsum(histogram)
    return float(values[np.searchsorted(cumulative, cumulative[-1] / 2)])
