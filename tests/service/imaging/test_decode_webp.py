"""WebP frames are taken from Pillow's decoder directly (service/imaging/decode.py:
`_load_webp`), to hold one copy of the pixels instead of three: the image must be exactly
what Pillow's own `load()` gives, for every kind of WebP."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from service.imaging import decode
from service.imaging.decode import load_image


def _picture(mode: str) -> Image.Image:
    image = Image.new("RGBA", (90, 70), (230, 225, 210, 255))
    draw = ImageDraw.Draw(image)
    draw.line([(20, 10), (60, 60)], fill=(10, 10, 30, 255), width=6)
    draw.rectangle((0, 0, 15, 12), fill=(0, 0, 0, 0))
    return image.convert(mode)


def _webp(mode: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    _picture(mode).save(buffer, "WEBP", **options)
    return buffer.getvalue()


def _rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways
    return _webp("RGBA", lossless=True, exif=exif.tobytes())


def _animated() -> bytes:
    buffer = io.BytesIO()
    first, second = _picture("RGBA"), _picture("RGB").rotate(90)
    first.save(buffer, "WEBP", save_all=True, append_images=[second], lossless=True)
    return buffer.getvalue()


CASES = {
    "lossless RGBA": _webp("RGBA", lossless=True),
    "lossy RGBA": _webp("RGBA", quality=80),
    "lossless RGB": _webp("RGB", lossless=True),
    "lossy RGB": _webp("RGB", quality=80),
    "EXIF-rotated": _rotated(),
    "animated (first frame)": _animated(),
}


def _pillow_load(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return ImageOps.exif_transpose(image)


def _assert_same(decoded: Image.Image, expected: Image.Image) -> None:
    assert (decoded.mode, decoded.size) == (expected.mode, expected.size)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


@pytest.mark.parametrize("name", list(CASES))
def test_webp_frames_are_what_pillow_loads(name: str) -> None:
    decoded = load_image(CASES[name])
    _assert_same(decoded, _pillow_load(CASES[name]))
    if name != "EXIF-rotated":  # a transposed copy is a new, format-less image
        assert decoded.format == "WEBP"


def test_the_decoder_is_released_once_the_frame_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Image.Image] = []
    original_open = Image.open

    def recording_open(*args: object, **kwargs: object) -> Image.Image:
        image = original_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(image)
        return image

    monkeypatch.setattr(Image, "open", recording_open)
    load_image(CASES["lossless RGBA"])
    (webp,) = opened
    assert getattr(webp, "_decoder", "missing") is None  # its canvases are freed


def test_frame_layouts_it_does_not_know_go_through_pillows_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decode, "_WEBP_FRAME_MODES", ())
    for data in CASES.values():
        _assert_same(load_image(data), _pillow_load(data))
