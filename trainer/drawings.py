"""How each kind of non-digit is drawn (trainer/negatives.py picks the kind and the seed).

Every drawing is an upload: a 64×64 grey sheet, dark ink on light paper or the reverse,
turned and sometimes blurred like a photo; `blank` may also be a model-ready tensor.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Letters that a hand or a font could make look like a digit are left out:
# B 8, G 6, I l 1, O o 0, S s 5, Z z 2, g q 9, b 6, T t 7/4, J j 1, U u 0/4, y 4.
LETTERS = "ACDEFHKLMNPQRVWXY" + "acdefhkmnprvwx"
SYMBOLS = "#@%&*+=?<>{}[]~^€£¥§¶©®™"

SIDE = 64  # the uploads are drawn on a 64×64 sheet, then preprocessed like any upload


@functools.lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """The TrueType fonts matplotlib ships: the same files on every machine with the train
    extra, so the sets are reproducible without system fonts."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    wanted = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral", "cmr10", "cmss10")
    fonts = sorted(path for path in folder.glob("*.ttf") if path.stem.startswith(wanted))
    if not fonts:
        raise RuntimeError(f"no fonts found in {folder}")
    return tuple(fonts)


def _sheet(rng: np.random.Generator) -> tuple[Image.Image, int, int]:
    """A blank sheet and its ink colour: dark ink on light paper, or the reverse."""
    if rng.random() < 0.7:
        paper, ink = int(rng.integers(190, 256)), int(rng.integers(0, 80))
    else:
        paper, ink = int(rng.integers(0, 60)), int(rng.integers(170, 256))
    return Image.new("L", (SIDE, SIDE), paper), paper, ink


def _finish(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Random rotation and pen thickness, a little blur: variety a camera or a pen adds."""
    paper = image.getpixel((0, 0))
    image = image.rotate(float(rng.uniform(-20, 20)), Image.Resampling.BILINEAR, fillcolor=paper)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    return image


def text(characters: str, rng: np.random.Generator) -> Image.Image:
    image, _, ink = _sheet(rng)
    fonts = font_files()
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), int(rng.integers(30, 52)))
    character = characters[int(rng.integers(len(characters)))]
    draw = ImageDraw.Draw(image)
    stroke = int(rng.integers(0, 3))
    middle = (SIDE / 2, SIDE / 2)
    draw.text(middle, character, fill=ink, font=font, anchor="mm", stroke_width=stroke)
    return _finish(image, rng)


def _points(rng: np.random.Generator, count: int, margin: int = 6) -> list[tuple[float, float]]:
    points = (rng.uniform(margin, SIDE - margin, size=2) for _ in range(count))
    return [(float(x), float(y)) for x, y in points]


def _polygon(rng: np.random.Generator, corners: int, star: bool) -> list[tuple[float, float]]:
    centre, radius = SIDE / 2 + rng.uniform(-4, 4, size=2), rng.uniform(16, 28)
    turn = rng.uniform(0, 2 * np.pi)
    points = []
    steps = corners * (2 if star else 1)
    for step in range(steps):
        r = radius * (rng.uniform(0.35, 0.5) if star and step % 2 else 1.0)
        angle = turn + 2 * np.pi * step / steps
        points.append((centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle)))
    return points


def shape(rng: np.random.Generator) -> Image.Image:
    image, _, ink = _sheet(rng)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 7))
    choice = int(rng.integers(8))
    filled = rng.random() < 0.5
    if choice <= 2:  # triangle, square-ish, pentagon/hexagon
        points = _polygon(rng, (3, 4, int(rng.integers(5, 8)))[choice], star=False)
        draw.polygon(points, fill=ink if filled else None, outline=ink, width=width)
    elif choice == 3:  # star
        points = _polygon(rng, int(rng.integers(4, 8)), star=True)
        draw.polygon(points, fill=ink if filled else None, outline=ink, width=width)
    elif choice == 4:  # disc, or a box: filled, since a thin ring reads as a 0
        box = sorted(rng.uniform(8, 56, size=2)), sorted(rng.uniform(8, 56, size=2))
        corners = (box[0][0], box[1][0], box[0][1] + 8, box[1][1] + 8)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(corners, fill=ink)
    elif choice == 5:  # cross or plus, thick
        width = int(rng.integers(5, 12))
        a, b = rng.uniform(8, 20), rng.uniform(44, 56)
        if rng.random() < 0.5:
            draw.line([(a, a), (b, b)], fill=ink, width=width)
            draw.line([(a, b), (b, a)], fill=ink, width=width)
        else:
            draw.line([(32, a), (32, b)], fill=ink, width=width)
            draw.line([(a, 32), (b, 32)], fill=ink, width=width)
    elif choice == 6:  # arrow
        draw.line([(10, 32), (52, 32)], fill=ink, width=width + 2)
        draw.polygon([(54, 32), (40, 20), (40, 44)], fill=ink)
    else:  # heart
        draw.ellipse((12, 14, 34, 36), fill=ink)
        draw.ellipse((30, 14, 52, 36), fill=ink)
        draw.polygon([(13, 29), (51, 29), (32, 54)], fill=ink)
    return _finish(image, rng)


def doodle(rng: np.random.Generator) -> Image.Image:
    image, _, ink = _sheet(rng)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 6))
    choice = int(rng.integers(6))
    if choice == 0:  # smiley
        draw.ellipse((6, 6, 58, 58), outline=ink, width=width)
        draw.ellipse((20, 20, 26, 26), fill=ink)
        draw.ellipse((38, 20, 44, 26), fill=ink)
        draw.arc((18, 24, 46, 48), 20, 160, fill=ink, width=width)
    elif choice == 1:  # house
        draw.rectangle((14, 30, 50, 58), outline=ink, width=width)
        draw.line([(10, 32), (32, 8), (54, 32)], fill=ink, width=width)
        draw.rectangle((28, 42, 36, 58), outline=ink, width=max(1, width - 1))
    elif choice == 2:  # sun: a disc with rays
        draw.ellipse((22, 22, 42, 42), fill=ink)
        for angle in np.linspace(0, 2 * np.pi, int(rng.integers(6, 13)), endpoint=False):
            c, s = np.cos(angle), np.sin(angle)
            draw.line(
                [(32 + 14 * c, 32 + 14 * s), (32 + 28 * c, 32 + 28 * s)], fill=ink, width=width
            )
    elif choice == 3:  # spiral
        turns = rng.uniform(2, 4)
        t = np.linspace(0, turns * 2 * np.pi, 200)
        r = 2 + 26 * t / t[-1]
        draw.line(
            list(zip(32 + r * np.cos(t), 32 + r * np.sin(t), strict=True)), fill=ink, width=width
        )
    elif choice == 4:  # zigzag or hatching
        if rng.random() < 0.5:
            ys = np.linspace(8, 56, int(rng.integers(5, 10)))
            draw.line([(8 if i % 2 else 56, y) for i, y in enumerate(ys)], fill=ink, width=width)
        else:
            for offset in np.arange(-48, 64, int(rng.integers(7, 12))):
                draw.line([(offset, 4), (offset + 56, 60)], fill=ink, width=width)
    else:  # scribble: several strokes, many turns
        for _ in range(int(rng.integers(2, 5))):
            draw.line(_points(rng, int(rng.integers(5, 10))), fill=ink, width=width, joint="curve")
    return _finish(image, rng)


def texture(rng: np.random.Generator) -> Image.Image:
    choice = int(rng.integers(5))
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    if choice == 0:  # sensor-like noise
        values = rng.normal(128, rng.uniform(20, 80), (SIDE, SIDE))
    elif choice == 1:  # stripes at an angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
        values = 128 + 120 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    elif choice == 2:  # checkerboard
        cell = int(rng.integers(4, 17))
        values = ((xx // cell + yy // cell) % 2) * 200 + 30
    elif choice == 3:  # many blobs
        image, _, ink = _sheet(rng)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(8, 30))):
            x, y, r = *rng.uniform(0, SIDE, size=2), rng.uniform(2, 8)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
        return _finish(image, rng)
    else:  # a smooth random field: a photo of a wall, cloth or leaves
        coarse = rng.uniform(0, 255, (int(rng.integers(3, 9)),) * 2).astype(np.uint8)
        field = Image.fromarray(coarse).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        values = np.asarray(field, np.float32) + rng.normal(0, 8, (SIDE, SIDE))
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


def blank(rng: np.random.Generator) -> Image.Image | np.ndarray:
    choice = int(rng.integers(4))
    if choice == 0:  # a constant tensor, as a /v2 client sends with np.zeros or np.full
        return np.full((28, 28), rng.choice([0.0, 1.0, rng.uniform(0, 1)]), dtype=np.float32)
    if choice == 1:  # a few stray pixels of a model-ready tensor
        pixels = np.zeros((28, 28), dtype=np.float32)
        count = int(rng.integers(1, 6))
        pixels[rng.integers(0, 28, count), rng.integers(0, 28, count)] = rng.uniform(0.2, 1, count)
        return pixels
    if choice == 2:  # faint noise over the whole tensor
        return rng.uniform(0, rng.uniform(0.05, 0.4), (28, 28)).astype(np.float32)
    image, _, ink = _sheet(rng)  # a speck on an otherwise empty sheet
    x, y, r = *rng.uniform(8, 56, size=2), rng.uniform(0.5, 2.5)
    ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return image


def pair(rng: np.random.Generator, digits: np.ndarray) -> Image.Image:
    count = 2 if rng.random() < 0.8 else 3
    chosen = digits[rng.integers(0, len(digits), count)]
    gap = int(rng.integers(0, 5))
    row = chosen[0]
    for digit in chosen[1:]:
        if gap < 0:
            overlap = np.maximum(row[:, gap:], digit[:, :-gap])
            row = np.concatenate([row[:, :gap], overlap, digit[:, -gap:]], axis=1)
        else:
            row = np.concatenate([row, np.zeros((28, gap), np.uint8), digit], axis=1)
    return Image.fromarray(row)
