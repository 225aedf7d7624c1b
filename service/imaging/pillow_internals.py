"""Pillow's private C API, used here and nowhere else.

`Image.core` (the C module `PIL._imaging`) is not Pillow's public API and may change in any
release. png.py's fast path for plain grey PNGs calls two of its codecs directly (see
`inflate_gray`), for the Python layers around them cost as much again as the decoding.
What of it is used is listed below: pyproject.toml pins Pillow to the minor version this was
written and tested against, and tests/service/imaging/test_pillow_internals.py checks each
name against the installed Pillow, and that this module uses nothing that is not listed.

A Pillow that moved them costs speed, not correctness: `inflate_gray` then returns None, and
png.py's caller takes the general path through Pillow's public API.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

_core: Any = getattr(Image, "core", None)  # None: every call below fails, and is caught

# Functions of `Image.core`, and the methods of the decoder and encoder objects they return.
CORE_FUNCTIONS = ("new", "zip_decoder", "raw_encoder")
DECODER_METHODS = ("setimage", "decode")
ENCODER_METHODS = ("setimage", "encode")


def inflate_gray(image_data: bytes, side: int) -> bytes | None:
    """The pixels of a `side` × `side` 8-bit grey PNG's image data (its IDAT chunks'
    contents, joined), row after row; None if they do not decode into exactly that.

    Pillow's PNG data decoder (inflate, unfilter) into an image, and its raw encoder out of
    it: what `Image.frombytes(..., "zip")` and `np.asarray` do, without their Python layers
    (arguments, checks, an `Image` object, the array interface); the calls are theirs."""
    box = (0, 0, side, side)
    try:
        image = _core.new("L", (side, side))
        decoder = _core.zip_decoder("L", "L")
        decoder.setimage(image, box)
        unread, error = decoder.decode(image_data)
        if unread >= 0 or error != 0:
            # Too little data, or data that does not inflate: Pillow's reading says which.
            return None
        encoder = _core.raw_encoder("L", "L")
        encoder.setimage(image, box)
        _, finished, pixels = encoder.encode(side * side)
    except Exception:  # a Pillow whose codecs changed: the general path reads it
        return None
    if finished != 1 or len(pixels) != side * side:
        return None
    return bytes(pixels)
