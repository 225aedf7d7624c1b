"""Pictures that are no digit, as users upload them: dark shapes and textures on light paper.

Drawn here, not taken from the trainer's generated negatives (samples/negatives_held_out.npz),
so that the service's tests do not depend on the trainer's data. Which of them a given model
refuses is for the tests to ask the model (tests/conftest.py: `non_digits`), never assumed.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

SIDE = 64
Drawing = Callable[[ImageDraw.ImageDraw], None]


def _star(draw: ImageDraw.ImageDraw) -> None:
    angles = np.linspace(-np.pi / 2, 3 * np.pi / 2, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, 28, 11)
    points = [(32 + r * np.cos(a), 32 + r * np.sin(a)) for r, a in zip(radii, angles, strict=True)]
    draw.polygon([(float(x), float(y)) for x, y in points], fill=0)


def _checkerboard(draw: ImageDraw.ImageDraw) -> None:
    for row in range(8):
        for column in range(8):
            if (row + column) % 2 == 0:
                draw.rectangle((column * 8, row * 8, column * 8 + 7, row * 8 + 7), fill=0)


def _hatching(draw: ImageDraw.ImageDraw) -> None:
    for offset in range(-SIDE, SIDE, 9):
        draw.line((offset, 0, offset + SIDE, SIDE), fill=0, width=3)
        draw.line((offset + SIDE, 0, offset, SIDE), fill=0, width=3)


# Name → drawing, the filled square first: the web page's test shows the first one refused.
DRAWINGS: dict[str, Drawing] = {
    "filled-square": lambda draw: draw.rectangle((14, 14, 50, 50), fill=0),
    "filled-triangle": lambda draw: draw.polygon([(8, 56), (56, 56), (32, 8)], fill=0),
    "star": _star,
    "checkerboard": _checkerboard,
    "hatching": _hatching,
    "wide-bar": lambda draw: draw.rectangle((4, 26, 60, 38), fill=0),
}


def non_digit_pngs() -> dict[str, bytes]:
    """Name → PNG file (64×64, black on white) of every drawing."""
    files = {}
    for name, drawing in DRAWINGS.items():
        image = Image.new("L", (SIDE, SIDE), 255)
        drawing(ImageDraw.Draw(image))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files[name] = buffer.getvalue()
    return files
