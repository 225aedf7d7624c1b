"""Work whose caller gave up stops between images and between interpreter chunks
(service/runtime/abandon.py), counted here rather than timed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import service.runtime.recognizer
from service.runtime.abandon import Abandoned
from service.runtime.interpreter import LiteRTModel
from service.runtime.pool import CHUNK_SIZE
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.conftest import png_base64


@pytest.fixture(scope="module")
def digits() -> list[str]:
    from samples.uploads import load_test_digits

    # Off-centre, so that each takes the general path (`preprocess_image`, slowed below)
    # rather than the batch's check for MNIST-ready digits.
    images, _ = load_test_digits(128)
    return [png_base64(np.roll(image, 5, axis=1)) for image in images]


def test_a_cancelled_request_decodes_no_more_images(
    make_settings: Callable[..., Settings], digits: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recognizer = Recognizer(make_settings())
    recognizer.load()
    decoded: list[int] = []
    real = service.runtime.recognizer.preprocess_image

    def slow(data: bytes, **options: Any) -> np.ndarray:
        time.sleep(0.02)  # like a large photo: 128 images would take 1.3 s per thread
        decoded.append(1)
        return real(data, **options)

    monkeypatch.setattr(service.runtime.recognizer, "preprocess_image", slow)
    from service.imaging.decode import decode_base64_image

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(recognizer.recognize_async(digits, decode_base64_image), 0.2)

    asyncio.run(give_up())
    at_cancel = len(decoded)
    time.sleep(0.5)  # the old code went on decoding all 128 meanwhile
    assert 0 < at_cancel < 64
    # At most the image its thread was decoding when cancelled.
    assert len(decoded) <= at_cancel + 1
    assert recognizer.admission.in_flight == 0


def test_abandoned_inference_stops_between_chunks(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    recognizer = Recognizer(make_settings())
    recognizer.load()
    abandoned = threading.Event()
    chunks: list[int] = []
    real_predict = LiteRTModel.predict

    def counted(self: LiteRTModel, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        chunks.append(len(batch))
        if len(chunks) == 2:
            abandoned.set()  # the caller gives up during the second chunk
        return real_predict(self, batch, batch_size)

    monkeypatch.setattr(LiteRTModel, "predict", counted)
    pixels = np.zeros((10 * CHUNK_SIZE, 28, 28), np.float32)
    with pytest.raises(Abandoned):
        recognizer.classify(pixels, abandoned)
    assert chunks == [CHUNK_SIZE, CHUNK_SIZE]
    # Not abandoned: every chunk runs, and the interpreter went back to the pool.
    assert recognizer.classify(pixels).shape == (10 * CHUNK_SIZE, 10)
