"""Big images are turned grey in stripes, with exactly the pixels of converting them whole.

`working_gray` converts images over `STRIPE_PIXELS` stripe by stripe so that no full-size
copy exists besides the decoded image; these tests shrink the stripes to a few rows and
compare every mode path (transparency, dither blur, wide and exotic modes) with the
one-piece conversion, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from service.imaging import gray
from service.imaging.gray import working_gray

# Not multiples of the reduction factor, so partial blocks at the edges are covered too.
SIZE = (603, 497)


def _scene(size: tuple[int, int], *, canvas: bool) -> Image.Image:
    """Dark strokes on noisy paper with a transparent corner, or on a transparent canvas."""
    width, height = size
    rng = np.random.default_rng(7)
    background = (0, 0, 0, 0) if canvas else (214, 207, 190, 255)
    image = Image.new("RGBA", size, background)
    draw = ImageDraw.Draw(image)
    points = [(width * x, height * y) for x, y in ((0.3, 0.2), (0.6, 0.5), (0.35, 0.8))]
    draw.line(points, fill=(20, 20, 40, 255), width=min(size) // 25)
    if canvas:
        return image.filter(ImageFilter.GaussianBlur(2))
    draw.rectangle((0, 0, width // 7, height // 9), fill=(0, 0, 0, 0))
    pixels = np.asarray(image).astype(np.int16)
    pixels[..., :3] += rng.integers(-12, 12, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA")


def _variants() -> dict[str, Image.Image]:
    photo, canvas = _scene(SIZE, canvas=False), _scene(SIZE, canvas=True)
    rgb, luma = photo.convert("RGB"), photo.convert("L")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = palette.getpixel((0, 0))
    keyed_gray, keyed_rgb = luma.copy(), rgb.copy()
    keyed_gray.info["transparency"] = luma.getpixel((0, 0))
    keyed_rgb.info["transparency"] = rgb.getpixel((0, 0))
    return {
        "RGBA photo, transparent corner": photo,
        "RGBA canvas": canvas,
        "LA canvas": canvas.convert("LA"),
        "La canvas": canvas.convert("LA").convert("La"),
        "RGBa canvas": canvas.convert("RGBa"),
        "PA photo": photo.convert("PA"),
        "LA opaque": rgb.convert("LA"),
        "P with transparent colour": palette,
        "L with transparent level": keyed_gray,
        "RGB with transparent colour": keyed_rgb,
        "P (dither blur)": rgb.convert("P"),
        "1 (wide dither blur)": luma.convert("1"),
        "RGB": rgb,
        "CMYK": rgb.convert("CMYK"),
        "LAB": rgb.convert("LAB"),
        "L": luma,
        "I;16": Image.fromarray(np.asarray(luma).astype(np.uint16) * 257),
        "I": luma.convert("I"),
        "F in [0, 1]": Image.fromarray(np.asarray(luma).astype(np.float32) / 255),
    }


VARIANTS = _variants()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_stripes_give_the_pixels_of_the_whole_image(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = VARIANTS[name]
    monkeypatch.setattr(gray, "STRIPE_PIXELS", 10**9)
    whole = working_gray(image)
    # A few rows a stripe: ~30 stripes, each overlapping its neighbours for the blur.
    monkeypatch.setattr(gray, "STRIPE_PIXELS", 10_000)
    striped = working_gray(image)
    assert striped.mode == whole.mode == "L"
    assert striped.size == whole.size == (151, 125)  # reduced 4×, edges rounded up
    assert np.array_equal(np.asarray(striped), np.asarray(whole))


def test_a_small_image_is_converted_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    crops: list[tuple[int, int, int, int]] = []
    original_crop = Image.Image.crop

    def counting_crop(self: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
        crops.append(box)
        return original_crop(self, box)

    monkeypatch.setattr(Image.Image, "crop", counting_crop)
    small = VARIANTS["RGBA photo, transparent corner"].resize((280, 280))
    assert working_gray(small).size == (140, 140)
    assert crops == []
    big = Image.new("RGB", (1500, 1000), "white")
    ImageDraw.Draw(big).line([(400, 200), (900, 800)], fill="black", width=40)
    assert working_gray(big).size == (188, 125)  # 1.5 MP, over STRIPE_PIXELS
    assert len(crops) > 1
    assert all(box[3] - box[1] < 1000 for box in crops)
