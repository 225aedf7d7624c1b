"""Micro-batching: coalescing, order, no timers (lone requests never wait), failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.runtime.batcher import PROBE_EVERY, QUIET_STREAK, MicroBatcher


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


def test_a_lone_request_runs_at_the_next_loop_turn_without_a_timer() -> None:
    recorder = Recorder()

    async def scenario() -> list[np.ndarray]:
        loop = asyncio.get_running_loop()

        def no_timers(*_: object) -> None:
            raise AssertionError("the batcher set a timer: a request would wait for company")

        loop.call_later = no_timers  # type: ignore[method-assign,assignment]
        batcher = MicroBatcher(recorder, max_batch=64)
        request = asyncio.ensure_future(batcher.submit(_images(1)))
        # Turn 1: the request is queued and a flush scheduled; turn 2: the flush runs it;
        # turn 3: the request resumes with its rows. Counted in turns, not milliseconds.
        for _ in range(3):
            await asyncio.sleep(0)
        assert request.done()
        # A second lone request later gets a batch of its own, just as promptly.
        return [request.result(), await batcher.submit(_images(2))]

    results = asyncio.run(scenario())
    assert recorder.sizes == [1, 1]
    assert [r.tolist() for r in results] == [[[4.0]], [[8.0]]]


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


def test_on_a_quiet_server_lone_requests_run_at_once_and_load_brings_batching_back() -> None:
    recorder = Recorder()

    async def scenario() -> tuple[list[bool], list[int]]:
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(recorder, max_batch=64)
        at_once = []
        for i in range(QUIET_STREAK + PROBE_EVERY):
            turns = 0

            def count_turn() -> None:
                nonlocal turns
                turns += 1

            loop.call_soon(count_turn)  # runs at the next loop turn, if there is one first
            await batcher.submit(_images(i))
            at_once.append(turns == 0)
        # Load arrives: requests come in together. Within PROBE_EVERY of them a probe
        # waits its turn, collects the rest, and the batcher is batching again.
        recorder.sizes.clear()
        await asyncio.gather(*(batcher.submit(_images(i)) for i in range(3 * PROBE_EVERY)))
        await asyncio.gather(*(batcher.submit(_images(i)) for i in range(10)))
        return at_once, recorder.sizes

    at_once, sizes = asyncio.run(scenario())
    # The first QUIET_STREAK lone requests waited a turn; after them, all but the probe ran
    # at once (the probe is the PROBE_EVERY-th request counted from the quiet start).
    expected = [False] * QUIET_STREAK + [(k + 1) % PROBE_EVERY != 0 for k in range(PROBE_EVERY)]
    assert at_once == expected
    assert len(sizes) < PROBE_EVERY + 2  # not one call per request
    assert sizes[-1] == 10  # batching again: ten requests, one call
