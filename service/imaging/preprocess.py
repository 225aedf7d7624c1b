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

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageChops

from service.errors import InvalidImageError
from service.imaging.decode import load_image
from service.imaging.gray import border_histogram, median, working_gray
from service.imaging.png import plain_gray_png
from service.model_card import IMAGE_SIDE
from service.settings import DEFAULT_MAX_PIXELS

MNIST_SIZE = IMAGE_SIDE
BOX_SIZE = 20
# MNIST shifts by whole pixels so the centre of mass lands within ±0.5 of pixel 14
# (measured over the whole test split), not at the geometric 13.5.
CENTRE = 14.0

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

_INDEX = np.arange(MNIST_SIZE, dtype=np.float32)
_add = np.add.reduce
_maximum = np.maximum.reduce
_LEVELS = np.arange(256, dtype=np.float32)


def preprocess_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Upload bytes → float32 (28, 28) in [0, 1], white digit on black, MNIST-style."""
    plain = plain_gray_png(data, MNIST_SIZE)
    if plain is not None:
        # What most API clients send, read without Pillow's Python layers: the same pixels.
        ready = _mnist_ready(plain)
        if ready is not None:
            return ready / np.float32(255)
        return _normalize_gray(Image.fromarray(plain))
    image = load_image(data, max_pixels=max_pixels)
    gray = working_gray(image)
    if gray is not image:
        # The decoded image is the one full-size buffer (up to `max_pixels` × 4 bytes):
        # freed now rather than after the digit is analysed (service/imaging/gray.py).
        image.close()
    return _normalize_gray(gray)


def normalize_digit(image: Image.Image) -> np.ndarray:
    """A decoded image of any size and mode → float32 (28, 28) in [0, 1], MNIST-style.

    Raises `InvalidImageError` when the image holds no ink (blank or uniform) or has a
    mode that cannot be read as grey levels.
    """
    return _normalize_gray(working_gray(image))


def _normalize_gray(gray: Image.Image) -> np.ndarray:
    # The pixel work stays in Pillow's C code on 8-bit images (convert, reduce,
    # subtract, histogram, point, getbbox, crop, resize); numpy only sees histograms,
    # a coarse background grid, the ink box and the final 20×20 digit.
    if gray.size == (MNIST_SIZE, MNIST_SIZE):
        pixels = _mnist_ready(np.asarray(gray))
        if pixels is not None:
            # Already what the model was trained on: any resampling would only blur it.
            return pixels / np.float32(255)
    return _centre_in_frame(_fit_box(_crop_to_ink(_ink_image(gray))))


def preprocess_images(
    uploads: Sequence[bytes], one: Callable[[int, bytes], np.ndarray] | None = None
) -> np.ndarray:
    """`preprocess_image` for each upload → float32 (N, 28, 28), the same pixels, faster
    for a batch: the common case (plain 28×28 grey PNGs that are already MNIST digits) is
    checked for all of them in a few numpy calls instead of a dozen per image.

    Every other upload goes to `one(index, data)` (default: `preprocess_image`), which
    may add what the caller needs around it (error indices, limits, cancellation)."""
    one = one or _preprocess_one
    candidates: list[int] = []
    grays: list[np.ndarray] = []
    for index, data in enumerate(uploads):
        gray = plain_gray_png(data, MNIST_SIZE)
        if gray is not None:
            candidates.append(index)
            grays.append(gray)
    out = np.empty((len(uploads), MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    ready = np.zeros(len(uploads), dtype=bool)
    if candidates:
        pixels, ready_candidates = _mnist_ready_batch(np.stack(grays))
        chosen = np.asarray(candidates)[ready_candidates]
        out[chosen] = pixels[ready_candidates] / np.float32(255)
        ready[chosen] = True
    for i in np.flatnonzero(~ready).tolist():
        out[i] = one(i, uploads[i])
    return out


def _preprocess_one(index: int, data: bytes) -> np.ndarray:
    return preprocess_image(data)


def _mnist_ready(gray: np.ndarray) -> np.ndarray | None:
    """The pixels (float32, 0–255) if `gray` (uint8, 28×28) is already an MNIST digit:
    black background, ink within a 20×20 box, centre of mass within 1 px of (14, 14)."""
    # The ufuncs' own reductions and `nonzero`, not `sum`, `max` and `flatnonzero`: the
    # same C loops (so the same sums), without numpy's Python wrappers, which cost more
    # than the arithmetic on 784 pixels. This runs for nearly every request.
    pixels = gray.astype(np.float32)
    row_mass = _add(pixels, axis=1)
    col_mass = _add(pixels, axis=0)
    (rows,) = row_mass.nonzero()  # the box of the non-zero pixels: it spans the
    (cols,) = col_mass.nonzero()  # frame unless the background is 0
    if not rows.size or rows[-1] - rows[0] >= BOX_SIZE or cols[-1] - cols[0] >= BOX_SIZE:
        return None
    total = float(_add(row_mass))
    centre_y = float(row_mass @ _INDEX) / total
    centre_x = float(col_mass @ _INDEX) / total
    if abs(centre_y - CENTRE) > 1.0 or abs(centre_x - CENTRE) > 1.0:
        return None
    # A faint digit still needs the contrast stretch of the general path.
    return pixels if int(_maximum(gray, axis=None)) >= MIN_CONTRAST else None


def _mnist_ready_batch(grays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_mnist_ready` for uint8 (N, 28, 28) images at once: (pixels as float32 0–255,
    which are ready). The same rule, in whole-batch numpy calls; a single image keeps the
    version above, which is faster for one (tests/service/imaging/test_preprocess.py
    holds the two to the same answers, edge cases included)."""
    pixels = grays.astype(np.float32)
    row_mass = pixels.sum(axis=2)  # (N, 28); sums of whole numbers: exact in float32
    col_mass = pixels.sum(axis=1)
    inked_rows, inked_cols = row_mass > 0, col_mass > 0  # the box of the non-zero pixels:
    last = MNIST_SIZE - 1  # it spans the frame unless the background is 0
    height = last - inked_rows[:, ::-1].argmax(axis=1) - inked_rows.argmax(axis=1)
    width = last - inked_cols[:, ::-1].argmax(axis=1) - inked_cols.argmax(axis=1)
    total = row_mass.sum(axis=1).astype(np.float64)
    has_ink = total > 0
    total[~has_ink] = 1.0
    centre_y = (row_mass @ _INDEX).astype(np.float64) / total
    centre_x = (col_mass @ _INDEX).astype(np.float64) / total
    ready = (
        has_ink
        & (height < BOX_SIZE)
        & (width < BOX_SIZE)
        & (np.abs(centre_y - CENTRE) <= 1.0)
        & (np.abs(centre_x - CENTRE) <= 1.0)
        & (pixels.max(axis=(1, 2)) >= MIN_CONTRAST)
    )
    return pixels, ready


def _ink_image(gray: Image.Image) -> Image.Image:
    """Ink strength as "L" (255 = stroke core), background exactly 0, either polarity.

    Statistics come from 256-bin histograms; the pixel work is Pillow's C code.
    """
    histogram = np.array(gray.histogram(), dtype=np.float32)
    # The border median, not the mean: ink touching the edge must not shift it.
    background = median(border_histogram(gray))
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
    level = median(np.where(np.greater_equal(_LEVELS, STRONG_FRACTION * peak), histogram, 0))
    # What the background left behind (noise, grain, JPEG ringing) sets a floor too.
    border = border_histogram(signal)
    rest = median(border)
    noise = rest + 3.0 * 1.4826 * median(border, np.abs(_LEVELS - rest))
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
