"""Hostile uploads built by hand: headers that lie about the size, and compression bombs.

Pillow will not write an image whose header claims 65535×65535 pixels without the
pixels, so these are assembled byte by byte from the format specifications; each
declares exactly what the caller asks, so the size check is exercised, not the parser.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG declaring width × height with a few bytes of pixel data (truncated image)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid all-black grey PNG: width × height bytes compressed ~1000:1.

    Streamed through zlib one row at a time, so building a 1-gigapixel bomb takes a
    second and ~no memory."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte 0, then the row
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_iccp_bomb(size_mb: int = 64) -> bytes:
    """A small valid PNG whose ICC profile chunk inflates to `size_mb` MB."""
    profile = zlib.compress(b"\0" * (size_mb * 1024 * 1024), 9)
    ihdr = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + bytes(28) for _ in range(28)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"iCCP", b"bomb\0\0" + profile)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def gif_header(width: int, height: int) -> bytes:
    """A GIF89a whose screen and only frame claim width × height, with one LZW code."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # 2-colour global table
    palette = b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02\x02\x4c\x01\x00"  # min code size 2, one sub-block, terminator
    return b"GIF89a" + screen + palette + frame + lzw + b"\x3b"


def bmp_header(width: int, height: int, bits: int = 24) -> bytes:
    """A BITMAPINFOHEADER BMP claiming width × height (height < 0: top-down) and 16 bytes."""
    colours = 2**bits if bits <= 8 else 0
    palette = b"\0\0\0\0" * colours
    offset = 14 + 40 + len(palette)
    pixels = b"\x7f" * 16
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(pixels), 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + palette + pixels


def jpeg_header(width: int, height: int, components: int = 1) -> bytes:
    """SOI, a baseline SOF0 claiming width × height, EOI: no tables, no scan."""
    specs = b"".join(bytes([index + 1, 0x11, 0]) for index in range(components))
    sof = struct.pack(">BHHB", 8, height, width, components) + specs
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def tiff_header(width: int, height: int, bits: int = 8, samples: int = 1) -> bytes:
    """A little-endian baseline TIFF claiming width × height with one tiny strip."""
    strip = b"\x80" * 16
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, bits),  # BitsPerSample (one value is fine for these tests)
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1 if samples == 1 else 2),  # Photometric: BlackIsZero / RGB
        (273, 4, 1, 0),  # StripOffsets, patched below
        (277, 3, 1, samples),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, len(strip)),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = strip_offset if tag == 273 else value
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + strip


HEADER_BUILDERS: dict[str, Callable[[int, int], bytes]] = {
    "png": png_header,
    "gif": gif_header,
    "bmp": bmp_header,
    "jpeg": jpeg_header,
    "tiff": tiff_header,
}
"""Format → builder(width, height) of an image whose header declares that size."""

# The largest dimension each format's header can declare.
MAX_DIMENSION: dict[str, int] = {
    "png": 2**31 - 1,
    "gif": 2**16 - 1,
    "bmp": 2**31 - 1,
    "jpeg": 2**16 - 1,
    "tiff": 2**32 - 1,
}
