"""Private APIs pinned and watched (issue 23): the part of Pillow's private C API (`Image.core`)
that png.py's fast path relies on, as listed in service/imaging/pillow_internals.py, is in the
installed Pillow and behaves as relied on, and pillow_internals.py uses none that is not
listed. A failure names what moved. (That the installed Pillow is the minor version
pyproject.toml pins: tests/service/server/test_private_apis.py.)

A Pillow that moved them would not decode wrongly, only slowly: `inflate_gray` would return
None for every image and png.py's caller take the general path; hence these tests."""

from __future__ import annotations

import ast
import io
import struct
from importlib.metadata import version
from typing import Any

import numpy as np
from PIL import Image

from service.imaging import pillow_internals
from service.imaging.pillow_internals import (
    CORE_FUNCTIONS,
    DECODER_METHODS,
    ENCODER_METHODS,
    inflate_gray,
)
from tests.conftest import REPO_ROOT

PILLOW = f"Pillow {version('pillow')}"
USED = "service/imaging/pillow_internals.py decodes plain grey PNGs with it"
SIDE = 28
BOX = (0, 0, SIDE, SIDE)
PIXELS = bytes((7 * x + 13 * y) % 256 for y in range(SIDE) for x in range(SIDE))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("L", (SIDE, SIDE), PIXELS).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_data(png: bytes) -> bytes:
    """The contents of `png`'s IDAT chunk (as Pillow writes PIXELS, there is one)."""
    at = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[at - 4 : at])
    return png[at + 4 : at + 4 + length]


def _core() -> Any:
    core = getattr(Image, "core", None)
    assert core is not None, f"{PILLOW}: PIL.Image.core is gone; {USED}"
    return core


def test_the_functions_and_methods_used_are_in_the_installed_pillow() -> None:
    core = _core()
    gone = [name for name in CORE_FUNCTIONS if not callable(getattr(core, name, None))]
    assert not gone, "\n".join(f"{PILLOW}: Image.core.{name} is gone; {USED}" for name in gone)
    problems = [
        f"{PILLOW}: Image.core.{maker}(...).{name} is gone; {USED}"
        for maker, names in (("zip_decoder", DECODER_METHODS), ("raw_encoder", ENCODER_METHODS))
        for name in names
        if not callable(getattr(getattr(core, maker)("L", "L"), name, None))
    ]
    assert not problems, "\n".join(problems)


def test_the_codecs_return_what_inflate_gray_reads() -> None:
    core = _core()
    image = core.new("L", (SIDE, SIDE))
    decoder = core.zip_decoder("L", "L")
    decoder.setimage(image, BOX)
    decoded = decoder.decode(_image_data(_png()))
    # (bytes of data it did not use, or -1 once the image is complete; 0, or an error code)
    assert isinstance(decoded, tuple) and decoded[0] < 0 and decoded[1] == 0, (
        f"{PILLOW}: Image.core.zip_decoder(...).decode returned {decoded!r} for a whole image,"
        f" not (-1, 0); {USED}"
    )
    encoder = core.raw_encoder("L", "L")
    encoder.setimage(image, BOX)
    encoded = encoder.encode(SIDE * SIDE)
    # (bytes written, 1 once the image is all written, those bytes)
    assert isinstance(encoded, tuple) and encoded[1:] == (1, PIXELS), (
        f"{PILLOW}: Image.core.raw_encoder(...).encode returned {encoded!r:.80}, not"
        f" ({SIDE * SIDE}, 1, the pixels); {USED}"
    )


def test_inflate_gray_gives_what_pillow_reads_and_none_for_bad_data() -> None:
    png = _png()
    data = _image_data(png)
    pixels = inflate_gray(data, SIDE)
    assert pixels == PIXELS, f"{PILLOW}: inflate_gray gave {pixels!r:.80} for a plain grey PNG"
    assert np.asarray(Image.open(io.BytesIO(png))).tobytes() == pixels  # Pillow's public way
    assert inflate_gray(data[:-10], SIDE) is None  # too little data
    assert inflate_gray(b"not zlib data", SIDE) is None


def test_pillow_internals_uses_only_what_it_lists() -> None:
    """Read from its code, so that the lists checked above cannot fall behind it."""
    path = REPO_ROOT / "service" / "imaging" / "pillow_internals.py"
    used: dict[str, set[str]] = {"_core": set(), "decoder": set(), "encoder": set()}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            used.get(node.value.id, set()).add(node.attr)
    listed = {
        "_core": set(CORE_FUNCTIONS),
        "decoder": set(DECODER_METHODS),
        "encoder": set(ENCODER_METHODS),
    }
    assert used == listed, f"pillow_internals.py uses {used} of Pillow's, but lists {listed}"
    assert pillow_internals._core is Image.core, "pillow_internals._core is not Image.core"
