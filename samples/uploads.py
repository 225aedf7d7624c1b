"""Realistic uploads made from MNIST digits, for tests and benchmarks.

Users do not send MNIST: they send photos and scans of dark ink on grey paper (JPEG),
screenshots, and HTML-canvas drawings (transparent PNGs). `make_upload` turns a real
MNIST test digit into such an upload, deterministically for a given numpy Generator,
so accuracy on uploads can be measured against the true label.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageFilter

from samples.mnist import SAMPLE_NPZ, shared_mnist
from trainer.data import read_idx_images, read_idx_labels

STYLES: tuple[str, ...] = (
    "mnist_png",  # the digit itself, 28×28 grey PNG: the control
    "paper_jpeg",  # photo of dark ink on uneven grey paper, RGB JPEG q70-90
    "paper_png_rgb",  # the same, lossless
    "canvas_png",  # dark strokes on a transparent 280×280 canvas (alpha = ink)
    "canvas_png_light",  # light strokes on a transparent canvas
)


def load_test_digits(count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` (default all) real MNIST test digits: uint8 (N, 28, 28), labels (N,).

    Reads the shared MNIST folder when present, else the committed sample (2,000
    digits); asking for more than the source holds returns all it has.
    """
    images, labels = _test_digits()
    return images[:count], labels[:count]


@functools.lru_cache(maxsize=1)
def _test_digits() -> tuple[np.ndarray, np.ndarray]:
    folder = shared_mnist()
    if folder is not None:
        return (
            read_idx_images(folder / "t10k-images-idx3-ubyte.gz"),
            read_idx_labels(folder / "t10k-labels-idx1-ubyte.gz"),
        )
    with np.load(SAMPLE_NPZ, allow_pickle=False) as archive:
        return archive["images"], archive["labels"]


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(array: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    return buffer.getvalue()


def make_upload(digit: np.ndarray, style: str, rng: np.random.Generator) -> bytes:
    """An upload in `style` (one of `STYLES`) showing `digit` (uint8 28×28, white on black)."""
    if style == "mnist_png":
        return encode_png(digit)
    if style in ("paper_jpeg", "paper_png_rgb"):
        photo = paper_photo(digit, rng)
        if style == "paper_jpeg":
            return encode_jpeg(photo, quality=int(rng.integers(70, 91)))
        return encode_png(photo)
    if style in ("canvas_png", "canvas_png_light"):
        return encode_png(canvas_drawing(digit, rng, light=style == "canvas_png_light"))
    raise ValueError(f"unknown upload style {style!r}; expected one of {STYLES}")


def paper_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8: dark ink on slightly uneven, tinted grey paper, blurred and noisy."""
    height, width = (int(side) for side in rng.integers(100, 401, size=2))
    ink = _enlarged_ink(digit, rng.uniform(0.3, 0.75) * min(height, width))
    coverage = _place(ink, height, width, rng)

    # Paper: a grey level with a lighting gradient across the sheet and a warm tint.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) - 0.5
    level = rng.uniform(165, 240) + rng.uniform(0, 25) * ramp
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)], dtype=np.float32)
    paper = level[..., None] * tint
    pen = rng.uniform(10, 70, size=3).astype(np.float32)  # black/blue-ish ballpoint
    image = paper * (1 - coverage[..., None]) + pen * coverage[..., None]

    # Camera softness, then sensor noise.
    radius = rng.uniform(0.3, 1.5) * min(height, width) / 200
    blurred = Image.fromarray(image.clip(0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(radius)
    )
    noisy = np.asarray(blurred, dtype=np.float32) + rng.normal(0, rng.uniform(1, 4), image.shape)
    return noisy.clip(0, 255).round().astype(np.uint8)


def canvas_drawing(digit: np.ndarray, rng: np.random.Generator, *, light: bool) -> np.ndarray:
    """RGBA uint8 280×280, like an HTML canvas export: transparent where nothing was
    drawn (stored as (0, 0, 0, 0), as browsers do), one stroke colour, alpha = ink."""
    side = 280
    ink = _enlarged_ink(digit, rng.uniform(0.45, 0.85) * side)
    alpha = _place(ink, side, side, rng)
    low, high = (190, 256) if light else (0, 70)
    colour = rng.integers(low, high, size=3).astype(np.uint8)
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    painted = alpha > 0
    rgba[painted, :3] = colour
    rgba[..., 3] = (alpha * 255).round().astype(np.uint8)
    return rgba


def _enlarged_ink(digit: np.ndarray, box_side: float) -> np.ndarray:
    """The digit's ink in [0, 1], enlarged so its 20-px MNIST box becomes `box_side`,
    cropped to the ink."""
    scale = max(box_side / 20, 1.0)
    size = max(28, round(28 * scale))
    enlarged = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    ink = np.asarray(enlarged, dtype=np.float32) / 255
    rows = np.flatnonzero(ink.max(axis=1) > 0.02)
    cols = np.flatnonzero(ink.max(axis=0) > 0.02)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(ink: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`ink` pasted at a random, usually off-centre spot of a blank (height, width) sheet."""
    ink = ink[: height - 2, : width - 2]  # never larger than the sheet
    margin_y = max(1, (height - ink.shape[0]) // 20)
    margin_x = max(1, (width - ink.shape[1]) // 20)
    top = int(rng.integers(margin_y, height - ink.shape[0] - margin_y + 1))
    left = int(rng.integers(margin_x, width - ink.shape[1] - margin_x + 1))
    sheet = np.zeros((height, width), dtype=np.float32)
    sheet[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return sheet
