"""Dynamic micro-batching: concurrent inference calls coalesced into one interpreter call.

Requests that reach the model at about the same time are stacked into one batch (at
most `max_batch` images), run once, and each caller gets its own rows back, in order.
Flush policy, chosen so that no request ever waits on a timer:

- a batch is started at the next event-loop tick after the first request arrives, so
  requests whose bodies arrived in the same network read join it, and a lone request
  pays one loop iteration (a few µs);
- while all `max_running` runners are busy, requests queue and the next batch starts as
  soon as one is free (continuous batching).

On a quiet server even one loop turn is too many: after `QUIET_STREAK` batches of one
request in a row, a request that finds nothing queued or running runs at once, without
yielding, except every `PROBE_EVERY`-th, which still waits its turn. When load grows, that
probe's batch collects the requests that arrived meanwhile, and batching resumes.

There is deliberately no "wait up to N ms for company" (issue 10): the service decodes
small images on the event loop itself, so no other request can be mid-decode while a
batch is pending, and for this CNN a shared call saves nothing per image, while every
change of batch size costs an interpreter re-allocation.

`run_batch` is called on the event loop itself (`offload=False`; right for a model this
small, where a thread hop costs about as much as the inference) or in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

RunBatch = Callable[[np.ndarray], np.ndarray]

# Batches of one in a row after which the server counts as quiet (see the module doc),
# and how often a request on a quiet server still waits a loop turn for company.
QUIET_STREAK = 4
PROBE_EVERY = 8


@dataclass
class _Item:
    images: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Counters for tests, benchmarks and metrics."""

    batches: int = 0
    images: int = 0
    largest: int = 0


class MicroBatcher:
    """Coalesces `submit()` calls from many coroutines into few `run_batch` calls."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch: int,
        max_running: int = 1,
        offload: bool = False,
        on_queue_wait: Callable[[float], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_running < 1:
            raise ValueError("max_batch and max_running must be ≥ 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_running = max_running
        self.offload = offload
        # Hook for a queue-wait histogram (service.middleware.metrics, when present): seconds each
        # request waited between `submit()` and the start of its batch.
        self.on_queue_wait = on_queue_wait
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._pending_images = 0
        self._running = 0
        self._scheduled: asyncio.Handle | None = None
        self._lone_batches = 0  # batches of one request in a row
        self._quiet_runs = 0

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Run `images` (N, ...) in some batch; returns the N rows of output for them."""
        if self._quiet():
            return self._run_now(images)
        loop = asyncio.get_running_loop()
        item = _Item(images, loop.create_future())
        self._pending.append(item)
        self._pending_images += len(images)
        self._schedule(loop)
        return await item.future

    def _quiet(self) -> bool:
        """Whether this request runs at once; each quiet run is counted, so that every
        PROBE_EVERY-th still waits its turn."""
        if (
            self.offload  # a thread's batch is awaited anyway
            or self._lone_batches < QUIET_STREAK
            or self._pending
            or self._running
        ):
            return False
        self._quiet_runs += 1
        return self._quiet_runs % PROBE_EVERY != 0

    def _run_now(self, images: np.ndarray) -> np.ndarray:
        if self.on_queue_wait is not None:
            self.on_queue_wait(0.0)
        self._count(images)
        return self._run_batch(images)

    def _count(self, images: np.ndarray) -> None:
        self.stats.batches += 1
        self.stats.images += len(images)
        self.stats.largest = max(self.stats.largest, len(images))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._pending or self._running >= self.max_running:
            return  # a finishing batch calls back here
        if self._scheduled is None:  # else already due at the next tick
            self._scheduled = loop.call_soon(self._flush, loop)

    def _take(self) -> list[_Item]:
        taken: list[_Item] = []
        count = 0
        while self._pending:
            item = self._pending[0]
            if item.future.done():  # the client went away while queued
                self._pending.pop(0)
                self._pending_images -= len(item.images)
                continue
            if taken and count + len(item.images) > self.max_batch:
                break
            taken.append(self._pending.pop(0))
            self._pending_images -= len(item.images)
            count += len(item.images)
        return taken

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = None
        while self._pending and self._running < self.max_running:
            items = self._take()
            if not items:
                return
            self._lone_batches = self._lone_batches + 1 if len(items) == 1 else 0
            started = time.perf_counter()
            if self.on_queue_wait is not None:
                for item in items:
                    self.on_queue_wait(started - item.queued_at)
            images = (
                np.concatenate([item.images for item in items])
                if len(items) > 1
                else items[0].images
            )
            self._count(images)
            if self.offload:
                self._running += 1
                task = loop.run_in_executor(None, self._run_batch, images)
                task.add_done_callback(functools.partial(self._finished, loop, items))
            else:
                try:
                    _scatter(items, self._run_batch(images))
                except Exception as error:
                    _fail(items, error)
        if self._pending:
            self._schedule(loop)

    def _finished(
        self, loop: asyncio.AbstractEventLoop, items: list[_Item], done: asyncio.Future[np.ndarray]
    ) -> None:
        self._running -= 1
        error = done.exception()
        if error is None:
            _scatter(items, done.result())
        else:
            _fail(items, error)
        self._schedule(loop)


def _scatter(items: list[_Item], outputs: np.ndarray) -> None:
    start = 0
    for item in items:
        end = start + len(item.images)
        if not item.future.done():
            item.future.set_result(outputs[start:end])
        start = end


def _fail(items: list[_Item], error: BaseException) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)
