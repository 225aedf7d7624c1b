"""The images every benchmark sends: real MNIST test digits, as uploads users make.

- `mnist_pngs`: the 28×28 grey PNG of each digit (the common API client case);
- `photo_jpegs`: each digit as a 300×300 photo of dark ink on uneven paper (RGB JPEG,
  quality 85), made by `tests/uploads.py`, the project's realistic-upload generator.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import orjson
from PIL import Image

from samples.uploads import encode_png, load_test_digits, paper_photo

PHOTO_SIDE = 300


def mnist_pngs(count: int) -> list[bytes]:
    digits, _ = load_test_digits(count)
    return [encode_png(digit) for digit in digits]


def photo_jpegs(count: int, seed: int = 0) -> list[bytes]:
    digits, _ = load_test_digits(count)
    rng = np.random.default_rng(seed)
    uploads = []
    for digit in digits:
        photo = Image.fromarray(paper_photo(digit, rng)).resize((PHOTO_SIDE, PHOTO_SIDE))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=85)
        uploads.append(buffer.getvalue())
    return uploads


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digits_body(images: list[bytes]) -> bytes:
    """A `/v1/predict` body (our API, and the seed's-way server, which accepts the same)."""
    return orjson.dumps({"images": [{"data": b64(image)} for image in images], "top_k": 1})


def peer_body(images: list[bytes]) -> bytes:
    """The BentoML and LitServe peers' body: `images`, a list of base64 strings."""
    return orjson.dumps({"images": [b64(image) for image in images]})


def v2_body(images: list[bytes]) -> bytes:
    """An Open Inference Protocol (V2) request: one BYTES tensor of N base64 images."""
    tensor = {
        "name": "images",
        "shape": [len(images)],
        "datatype": "BYTES",
        "parameters": {"content_type": "base64"},
        "data": [b64(image) for image in images],
    }
    return orjson.dumps({"inputs": [tensor]})
