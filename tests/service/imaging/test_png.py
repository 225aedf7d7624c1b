"""Plain grey PNGs read without Pillow's Python layers (service/imaging/png.py): the same
pixels as Pillow for what they take, and None (the general path) for anything else."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from samples.uploads import encode_png, load_test_digits
from service.imaging import preprocess
from service.imaging.decode import declared_pixels, load_image
from service.imaging.png import plain_gray_png, png_size


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunk(png: bytes, kind: bytes, body: bytes, before: bytes = b"IDAT") -> bytes:
    at = png.index(before) - 4
    return png[:at] + _chunk(kind, body) + png[at:]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images, _ = load_test_digits(64)
    return images


def test_pillow_encodings_read_as_pillow_reads_them(digits: np.ndarray) -> None:
    for index, digit in enumerate(digits):
        image = Image.fromarray(digit)
        options: list[dict[str, object]] = [{}, {"optimize": True}, {"compress_level": 0}]
        png = _png(image, **options[index % 3])
        pixels = plain_gray_png(png, 28)
        assert pixels is not None
        assert np.array_equal(pixels, np.asarray(Image.open(io.BytesIO(png))))


def test_passive_chunks_and_split_image_data_are_read(digits: np.ndarray) -> None:
    png = _with_chunk(_png(Image.fromarray(digits[0])), b"gAMA", struct.pack(">I", 45455))
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a scanner")
    texted = _png(Image.fromarray(digits[1]), pnginfo=info)
    # One IDAT cut in two, as encoders writing in blocks do.
    plain = _png(Image.fromarray(digits[2]))
    start, length = _first_idat(plain)
    data = plain[start + 8 : start + 8 + length]
    split = plain[:start] + _chunk(b"IDAT", data[:50]) + _chunk(b"IDAT", data[50:])
    split += plain[start + 12 + length :]
    for variant in (png, texted, split):
        pixels = plain_gray_png(variant, 28)
        assert pixels is not None
        assert np.array_equal(pixels, np.asarray(Image.open(io.BytesIO(variant))))


def test_anything_else_takes_the_general_path(digits: np.ndarray) -> None:
    digit = Image.fromarray(digits[0])
    plain = _png(digit)
    crc_at = plain.index(b"IEND") - 8
    others = {
        "another size": _png(digit.resize((29, 29))),
        "RGB": _png(digit.convert("RGB")),
        "16-bit": _png(digit.convert("I;16")),
        "palette": _png(digit.convert("P")),
        "interlaced": _interlaced(digit),
        "transparency": _png(digit, transparency=0),
        "EXIF orientation": _with_chunk(plain, b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"),
        "an unknown chunk": _with_chunk(plain, b"zzZz", b"?"),
        "a damaged CRC": plain[:crc_at] + bytes([plain[crc_at] ^ 1]) + plain[crc_at + 1 :],
        "truncated": plain[: len(plain) // 2],
        "no PNG": b"GIF89a" + plain[6:],
        "image data that does not inflate": _bad_idat(plain),
        "image data cut short": _short_idat(plain),
    }
    for name, data in others.items():
        assert plain_gray_png(data, 28) is None, name


def _interlaced(image: Image.Image) -> bytes:
    png = bytearray(_png(image))
    png[28] = 1  # IHDR's interlace byte (Pillow does not write Adam7), CRC fixed below
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _first_idat(png: bytes) -> tuple[int, int]:
    """Where the first IDAT chunk starts (its length field), and its data's length."""
    start = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[start : start + 4])
    return start, length


def _short_idat(png: bytes) -> bytes:
    """`png` whose image data (a zlib stream) stops before its end."""
    start, length = _first_idat(png)
    data = png[start + 8 : start + 8 + length]
    return png[:start] + _chunk(b"IDAT", data[:-6]) + png[start + 12 + length :]


def _bad_idat(png: bytes) -> bytes:
    start, length = _first_idat(png)
    junk = _chunk(b"IDAT", b"\x00" * length)
    return png[:start] + junk + png[start + 12 + length :]


def test_preprocessing_gives_the_same_pixels_either_way(
    digits: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = [encode_png(digit) for digit in digits]
    # 28×28 but not MNIST-ready (off centre, faint, inverted): the general path after it.
    uploads += [encode_png(np.roll(digit, 5, axis=1)) for digit in digits[:8]]
    uploads += [encode_png((digit // 8).astype(np.uint8)) for digit in digits[:4]]
    uploads += [encode_png(255 - digit) for digit in digits[:4]]
    fast = [preprocess.preprocess_image(upload) for upload in uploads]
    monkeypatch.setattr(preprocess, "plain_gray_png", lambda data, side: None)
    general = [preprocess.preprocess_image(upload) for upload in uploads]
    for mine, pillows in zip(fast, general, strict=True):
        assert mine.dtype == pillows.dtype and np.array_equal(mine, pillows)


def test_png_size_reads_the_header(digits: np.ndarray) -> None:
    png = _png(Image.fromarray(digits[0]).resize((300, 40)))
    assert png_size(png) == (300, 40)
    assert declared_pixels(png) == 12_000 == load_image(png).size[0] * 40
    assert png_size(b"\x89PNG\r\n\x1a\n") is None
    assert png_size(_png(Image.fromarray(digits[0]))[:20]) is None
