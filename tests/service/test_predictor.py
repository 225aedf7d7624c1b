"""The interpreter pool under concurrent requests, and inference in both input dtypes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.interpreter import LiteRTModel
from service.predictor import CHUNK_SIZE, Predictor
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


def test_many_concurrent_requests_get_their_own_correct_answers(
    make_app: Callable[..., FastAPI], clear_digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = clear_digits
    encoded = [png_base64(image) for image in images]
    in_use: set[int] = set()
    peak = 0
    guard = threading.Lock()
    real_predict = LiteRTModel.predict

    def exclusive_predict(
        self: LiteRTModel, batch: np.ndarray, batch_size: int = 256
    ) -> np.ndarray:
        nonlocal peak
        with guard:
            assert id(self) not in in_use, "one interpreter used by two threads at once"
            in_use.add(id(self))
            peak = max(peak, len(in_use))
        try:
            return real_predict(self, batch, batch_size)
        finally:
            with guard:
                in_use.discard(id(self))

    monkeypatch.setattr(LiteRTModel, "predict", exclusive_predict)
    app = make_app(interpreters=2)

    async def one(client: httpx.AsyncClient, request_number: int) -> None:
        # Different sizes and contents per request, so crossed wires would show.
        picks = [(request_number * 7 + j) % len(images) for j in range(1 + request_number % 9)]
        body = {"images": [{"data": encoded[p], "id": f"{request_number}-{p}"} for p in picks]}
        response = await client.post("/v1/predict", json=body)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["id"] for p in predictions] == [f"{request_number}-{p}" for p in picks]
        assert [p["digit"] for p in predictions] == [int(labels[p]) for p in picks]

    async def all_of_them() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await asyncio.gather(*(one(client, n) for n in range(120)))

    asyncio.run(all_of_them())
    assert 1 <= peak <= 2


def test_batches_bigger_than_a_chunk_match_single_images(
    loaded_predictor: Callable[[str | None], Predictor], clear_digits: Digits
) -> None:
    predictor = loaded_predictor(None)
    images = clear_digits[0].astype(np.float32) / 255
    batch = np.concatenate([images] * (2 * CHUNK_SIZE // len(images) + 2))[: 2 * CHUNK_SIZE + 3]
    together = predictor.probabilities(batch)
    alone = np.concatenate([predictor.probabilities(image[None]) for image in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-12)


def test_float_and_int8_models_agree(
    loaded_predictor: Callable[[str | None], Predictor],
    tflite_files: list[str],
    clear_digits: Digits,
) -> None:
    images, labels = clear_digits
    x = images.astype(np.float32) / 255
    for model_file in tflite_files:
        probabilities = loaded_predictor(model_file).probabilities(x)
        assert (probabilities.argmax(axis=1) == labels).all(), model_file
        assert (probabilities >= 0).all()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
