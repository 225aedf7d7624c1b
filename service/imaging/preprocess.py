"""The one preprocessing function for inference: any upload → one MNIST-style 28×28 digit.

The model was trained on MNIST, so every upload is made to look like MNIST did: a
white digit on a black background, its ink box scaled (aspect kept, anti-aliased) so
the longer side is 20 pixels, placed in a 28×28 frame with the centre of mass at
pixel (14, 14), values in [0, 1]. Real uploads are nothing like that: photos and scans
of dark ink on grey paper, transparent canvas drawings, small digits in big images.

Only numpy and Pillow: this runs in the serving image, which has neither TensorFlow
nor scipy. Everything is vectorized; a clean 28×28 PNG takes a fast path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from service.errors import InvalidImageError
from service.imaging.decode import DRAFT_MIN_SIDE, load_image
from service.model_card import IMAGE_SIDE
from service.settings import DEFAULT_MAX_PIXELS

MNIST_SIZE = IMAGE_SIDE
BOX_SIZE = 20
# MNIST shifts by whole pixels so the centre of mass lands within ±0.5 of pixel 14
# (measured over the whole test split), not at the geometric 13.5.
CENTRE = 14.0

# Working resolution: big images are box-reduced first so that the shorter side stays
# at least this long; the digit is analysed there and still ends up ≥ 4× its 20-px box.
WORK_MIN_SIDE = DRAFT_MIN_SIDE

# Ink must differ from the background by at least this much (of 255) to count;
# below it an image is "blank" (uniform, or only sensor/JPEG noise).
MIN_CONTRAST = 24.0
# Signal under this fraction of the ink level is paper texture, leftover shading or
# JPEG ringing around strokes, and is cut to exactly 0 like MNIST's background.
NOISE_FLOOR = 0.2
# Ink is estimated from the strongest pixels (≥ half the maximum); stretching to their
# median puts stroke cores at 1.0 like MNIST, and a single dark speck cannot set the scale.
STRONG_FRACTION = 0.5

# The local background is estimated on a grid about this many cells across (the
# shorter side), with a min/max window of this many cells: wider than any stroke of a
# digit that fills the image, narrower than the shadows and gradients of a photo.
BACKGROUND_GRID = 24
BACKGROUND_WINDOW = 7
# Rows or columns at the ends of the ink box that together hold less than this share
# of all ink are specks, not digit: a stroke tip at working resolution holds more.
SPECK_MASS = 0.003

_WIDE_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Modes whose transparency we honour; "La"/"RGBa" are premultiplied variants.
_ALPHA_MODES = {"LA": "LA", "La": "LA", "PA": "LA", "RGBA": "RGBA", "RGBa": "RGBA"}
_INDEX = np.arange(MNIST_SIZE, dtype=np.float32)
_LEVELS = np.arange(256, dtype=np.float32)


def preprocess_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Upload bytes → float32 (28, 28) in [0, 1], white digit on black, MNIST-style."""
    return normalize_digit(load_image(data, max_pixels=max_pixels))


def normalize_digit(image: Image.Image) -> np.ndarray:
    """A decoded image of any size and mode → float32 (28, 28) in [0, 1], MNIST-style.

    Raises `InvalidImageError` when the image holds no ink (blank or uniform) or has a
    mode that cannot be read as grey levels.
    """
    # The pixel work stays in Pillow's C code on 8-bit images (convert, reduce,
    # subtract, histogram, point, getbbox, crop, resize); numpy only sees histograms,
    # a coarse background grid, the ink box and the final 20×20 digit.
    gray = _gray_image(image)
    if gray.size == (MNIST_SIZE, MNIST_SIZE):
        pixels = _mnist_ready(gray)
        if pixels is not None:
            # Already what the model was trained on: any resampling would only blur it.
            return pixels / np.float32(255)
    return _centre_in_frame(_fit_box(_crop_to_ink(_ink_image(gray))))


def _gray_image(image: Image.Image) -> Image.Image:
    """An 8-bit "L" image at working size whose contrast shows the digit, with
    transparency already resolved (either polarity is fine here)."""
    mode = image.mode
    try:
        if mode in _ALPHA_MODES or ("transparency" in image.info and mode in ("P", "L", "RGB")):
            layered = image.convert(_ALPHA_MODES.get(mode, "RGBA"))
            alpha = layered.getchannel("A")
            if any(alpha.histogram()[:250]):  # some pixels are really see-through
                return _from_transparent(layered, alpha)
            image = layered.convert("L")  # an alpha channel that is not used
        elif mode in _WIDE_MODES:
            return _from_wide(image)
        elif mode == "LAB":
            image = image.getchannel("L")  # Pillow cannot convert LAB; lightness is it
        elif mode != "L":
            image = image.convert("L")  # Pillow's luma, from 1, P, RGB, CMYK, YCbCr, HSV...
        if mode in ("1", "P", "PA") and min(image.size) >= 2 * MNIST_SIZE:
            # Bilevel and palette images of photos are usually dithered: a box mean turns
            # the dot pattern back into grey before anything is measured (bilevel dots
            # are coarser, so there the box grows with the image).
            radius = max(1, round(min(image.size) / 50)) if mode == "1" else 1
            image = image.filter(ImageFilter.BoxBlur(radius))
        return _reduce(image)
    except Exception as error:  # a mode Pillow cannot turn into grey levels
        raise InvalidImageError(f"unsupported image mode {mode!r}: {error}") from error


def _from_transparent(layered: Image.Image, alpha: Image.Image) -> Image.Image:
    alpha = _reduce(alpha)
    if _median(_border_histogram(alpha)) < 128:
        # Strokes on a transparent canvas: the paint *is* the digit, whatever its
        # colour (browsers even store transparent pixels as black), so alpha is the
        # ink signal: light on dark, like MNIST.
        return alpha
    # An opaque picture with some transparent parts: show it the way a browser would,
    # over white, and treat it as any other photo.
    white = Image.new("RGBA", layered.size, (255, 255, 255, 255))
    return _reduce(Image.alpha_composite(white, layered.convert("RGBA")).convert("L"))


def _from_wide(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float images → 8-bit, by the range the values use."""
    values = np.asarray(_reduce(image.convert("F")))
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


def _reduce(image: Image.Image) -> Image.Image:
    # Box reduction in C is cheap and anti-aliased; it keeps the work on big PNG
    # photos and scans proportional to the working size, not the upload size.
    factor = min(image.size) // WORK_MIN_SIDE
    return image.reduce(factor) if factor >= 2 else image


def _border_histogram(gray: Image.Image) -> np.ndarray:
    """Histogram of the outer frame (5 % of the shorter side, at least 1 px), where
    there is usually only background."""
    width, height = gray.size
    frame = max(1, round(min(width, height) * 0.05))
    mask = Image.new("L", gray.size, 255)
    if width > 2 * frame and height > 2 * frame:
        mask.paste(0, (frame, frame, width - frame, height - frame))
    return np.array(gray.histogram(mask), dtype=np.float32)


def _median(histogram: np.ndarray, values: np.ndarray = _LEVELS) -> float:
    """Median of a distribution given as counts over `values` (any order)."""
    if values is not _LEVELS:
        order = np.argsort(values, kind="stable")
        histogram, values = histogram[order], values[order]
    cumulative = np.cumsum(histogram)
    return float(values[np.searchsorted(cumulative, cumulative[-1] / 2)])


def _mnist_ready(gray: Image.Image) -> np.ndarray | None:
    """The pixels (float32, 0–255) if `gray` is already an MNIST digit: black background,
    ink within a 20×20 box, centre of mass within 1 px of (14, 14). Else None."""
    box = gray.getbbox()  # of the non-zero pixels: spans the frame unless the background is 0
    if box is None or box[2] - box[0] > BOX_SIZE or box[3] - box[1] > BOX_SIZE:
        return None
    pixels = np.asarray(gray).astype(np.float32)
    row_mass = pixels.sum(axis=1)
    col_mass = pixels.sum(axis=0)
    total = float(row_mass.sum())
    centre_y = float(row_mass @ _INDEX) / total
    centre_x = float(col_mass @ _INDEX) / total
    if abs(centre_y - CENTRE) > 1.0 or abs(centre_x - CENTRE) > 1.0:
        return None
    # A faint digit still needs the contrast stretch of the general path.
    return pixels if float(pixels.max()) >= MIN_CONTRAST else None


def _ink_image(gray: Image.Image) -> Image.Image:
    """Ink strength as "L" (255 = stroke core), background exactly 0, either polarity.

    Statistics come from 256-bin histograms; the pixel work is Pillow's C code.
    """
    histogram = np.array(gray.histogram(), dtype=np.float32)
    # The border median, not the mean: ink touching the edge must not shift it.
    background = _median(_border_histogram(gray))
    present = np.flatnonzero(histogram)
    darker = background - float(present[0])
    lighter = float(present[-1]) - background
    if max(darker, lighter) < MIN_CONTRAST:
        raise InvalidImageError("image is blank: no digit found")
    # Ink is whatever departs furthest from the background: dark ink on paper, or a
    # light digit on a dark screen or canvas. Paper is rarely evenly lit (shadows,
    # vignetting, a lamp on one side), so a local background is subtracted, not one
    # level (a "top-hat"): only strokes remain, light on black.
    dark_ink = darker > lighter
    local = _local_background(gray, dark_ink=dark_ink)
    signal = ImageChops.subtract(local, gray) if dark_ink else ImageChops.subtract(gray, local)

    histogram = np.array(signal.histogram(), dtype=np.float32)
    peak = float(np.flatnonzero(histogram)[-1])
    level = _median(np.where(np.greater_equal(_LEVELS, STRONG_FRACTION * peak), histogram, 0))
    # What the background left behind (noise, grain, JPEG ringing) sets a floor too.
    border = _border_histogram(signal)
    rest = _median(border)
    noise = rest + 3.0 * 1.4826 * _median(border, np.abs(_LEVELS - rest))
    floor = max(NOISE_FLOOR * level, noise)
    if level - floor < MIN_CONTRAST / 2:
        raise InvalidImageError("image is blank: no digit found")
    table = np.clip((_LEVELS - floor) / (level - floor), 0.0, 1.0) * 255 + 0.5
    return signal.point(table.astype(np.uint8).tolist())


def _local_background(gray: Image.Image, *, dark_ink: bool) -> Image.Image:
    """The paper under the ink: a morphological closing (dark ink) or opening (light
    ink) on a coarse copy, with a window wider than any stroke, scaled back up."""
    factor = max(1, min(gray.size) // BACKGROUND_GRID)
    coarse = np.asarray(gray.reduce(factor) if factor > 1 else gray)
    first, second = (np.maximum, np.minimum) if dark_ink else (np.minimum, np.maximum)
    background = Image.fromarray(_square_filter(_square_filter(coarse, first), second))
    # Bilinear enlargement is also what smooths the blocky coarse estimate.
    return background.resize(gray.size, Image.Resampling.BILINEAR) if factor > 1 else background


def _square_filter(values: np.ndarray, combine: np.ufunc) -> np.ndarray:
    """Min or max over a BACKGROUND_WINDOW-wide square, edges replicated.

    Pillow's Min/MaxFilter sorts every window; here each axis takes a few whole-array
    `combine` steps that double the covered width (1 → 2 → 4 → 7)."""
    radius = BACKGROUND_WINDOW // 2
    for axis in (0, 1):
        length = values.shape[axis]
        edges = np.clip(np.arange(-radius, length + radius), 0, length - 1)
        rows = np.moveaxis(values.take(edges, axis=axis), axis, 0)
        covered = 1
        while covered < BACKGROUND_WINDOW:
            step = min(covered, BACKGROUND_WINDOW - covered)
            rows = combine(rows[:-step], rows[step:])
            covered += step
        values = np.moveaxis(rows, 0, axis)
    return np.ascontiguousarray(values)


def _crop_to_ink(ink: Image.Image) -> Image.Image:
    """The ink's bounding box, ignoring stray specks (dust, dither, a JPEG block) that
    hold a negligible share of the ink beyond the digit's ends."""
    box = ink.getbbox()
    if box is None:
        raise InvalidImageError("image is blank: no digit found")
    ink = ink.crop(box)
    pixels = np.asarray(ink, dtype=np.float32)
    top, bottom = _trimmed_span(pixels.sum(axis=1))
    left, right = _trimmed_span(pixels.sum(axis=0))
    return ink.crop((left, top, right, bottom))


def _trimmed_span(profile: np.ndarray) -> tuple[int, int]:
    """[start, end) of `profile` once each end has shed up to `SPECK_MASS` of its mass."""
    cumulative = np.cumsum(profile)
    cut = SPECK_MASS * float(cumulative[-1])
    start = int(np.searchsorted(cumulative, cut, side="right"))
    end = int(np.searchsorted(cumulative, float(cumulative[-1]) - cut, side="left")) + 1
    return start, max(end, start + 1)


def _fit_box(box: Image.Image) -> np.ndarray:
    """Scale the ink box so its longer side is 20 px, keeping the aspect ratio."""
    width, height = box.size
    scale = BOX_SIZE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != box.size:
        # Shrinking averages the ink over each target pixel, which is how MNIST got
        # its grey anti-aliased edges; Lanczos keeps strokes crisp when enlarging.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.LANCZOS
        box = box.resize(size, resample)
    return np.asarray(box, dtype=np.float32) / np.float32(255)


def _centre_in_frame(box: np.ndarray) -> np.ndarray:
    """Place the box in a 28×28 frame, shifted by whole pixels so its centre of mass
    lands on (14, 14) as in MNIST, clamped so no ink leaves the frame."""
    height, width = box.shape
    total = float(box.sum())
    if total <= 0:
        raise InvalidImageError("image is blank: no digit found")
    centre_y = float(box.sum(axis=1) @ _INDEX[:height]) / total
    centre_x = float(box.sum(axis=0) @ _INDEX[:width]) / total
    top = min(max(round(CENTRE - centre_y), 0), MNIST_SIZE - height)
    left = min(max(round(CENTRE - centre_x), 0), MNIST_SIZE - width)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = box
    return frame
