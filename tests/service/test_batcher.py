"""Micro-batching: coalescing, order, the no-wait rule for lone requests, failures."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service.batcher import MicroBatcher


class Recorder:
    """A `run_batch` that records each batch's size and returns row sums (checkable)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.sizes.append(len(images))
        return images.reshape(len(images), -1).sum(axis=1, keepdims=True)


def _images(*values: float) -> np.ndarray:
    return np.stack([np.full((2, 2), value, dtype=np.float32) for value in values])


@pytest.mark.parametrize("offload", [False, True])
def test_concurrent_requests_share_a_batch_and_get_their_own_rows(offload: bool) -> None:
    recorder = Recorder()

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(recorder, max_batch=64, offload=offload)
        requests = [_images(i) for i in range(10)] + [_images(100, 200)]
        return await asyncio.gather(*(batcher.submit(r) for r in requests))

    results = asyncio.run(scenario())
    assert recorder.sizes == [12]  # 10 single images + one of two, in one call
    for i in range(10):
        assert results[i].tolist() == [[4.0 * i]]
    assert results[10].tolist() == [[400.0], [800.0]]


def test_batches_never_exceed_max_batch() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(recorder, max_batch=4)
        await asyncio.gather(*(batcher.submit(_images(i)) for i in range(10)))

    asyncio.run(scenario())
    assert recorder.sizes == [4, 4, 2]


def test_a_lone_request_does_not_wait_for_company() -> None:
    recorder = Recorder()

    async def scenario() -> float:
        # A long max_wait only applies while other requests are being decoded.
        batcher = MicroBatcher(recorder, max_batch=64, max_wait=5.0)
        began = time.perf_counter()
        await batcher.submit(_images(1))
        return time.perf_counter() - began

    assert asyncio.run(scenario()) < 1.0
    assert recorder.sizes == [1]


def test_max_wait_holds_a_batch_for_requests_still_being_decoded() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(recorder, max_batch=64, max_wait=0.2)

        async def late() -> np.ndarray:
            with batcher.expect():
                await asyncio.sleep(0.05)  # "decoding"
                return await batcher.submit(_images(2))

        async def early() -> np.ndarray:
            with batcher.expect():
                return await batcher.submit(_images(1))

        await asyncio.gather(early(), late())

    asyncio.run(scenario())
    assert recorder.sizes == [2]


def test_a_failing_batch_fails_each_of_its_requests() -> None:
    def broken(images: np.ndarray) -> np.ndarray:
        raise RuntimeError("interpreter exploded")

    async def scenario() -> list[object]:
        batcher = MicroBatcher(broken, max_batch=8)
        return await asyncio.gather(
            *(batcher.submit(_images(i)) for i in range(3)), return_exceptions=True
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_queue_wait_is_reported() -> None:
    waits: list[float] = []

    async def scenario() -> None:
        batcher = MicroBatcher(Recorder(), max_batch=8, on_queue_wait=waits.append)
        await asyncio.gather(*(batcher.submit(_images(i)) for i in range(3)))

    asyncio.run(scenario())
    assert len(waits) == 3 and all(0 <= w < 1.0 for w in waits)
