"""The interpreters of one loaded model, lent to one caller at a time, and inference timing.

A LiteRT interpreter is not thread-safe. Worker threads take one from a queue (and wait
while all are busy); the event loop has one of its own, so it never waits for a thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from service.runtime.abandon import stop_if
from service.runtime.interpreter import LiteRTModel

# Measured on the committed CNN: batching amortizes almost nothing per image, and larger
# batches only grow the working set. So a batch runs at its exact size, in chunks of at
# most this many images, and is never padded up to fixed buckets (padding costs images).
CHUNK_SIZE = 16


class InferenceObserver(Protocol):
    """Where the runtime reports its timings (the service passes a Prometheus one)."""

    def inference_done(self, seconds: float) -> None:
        """One interpreter call (of up to `CHUNK_SIZE`-image chunks) took `seconds`."""

    def queue_waited(self, seconds: float) -> None:
        """An image waited `seconds` for its micro-batch to start."""

    def request_shed(self) -> None:
        """A request was refused: too many images in flight (runtime/admission.py)."""

    def images_requested(self, count: int) -> None:
        """A request (of either API, over either transport) asked about `count` images."""


class InterpreterPool:
    def __init__(self, observer: InferenceObserver | None = None) -> None:
        self._observer = observer
        self._queue: queue.SimpleQueue[LiteRTModel] = queue.SimpleQueue()
        self._loop_interpreter: LiteRTModel | None = None
        # Only contended when two event loops share one recognizer (tests).
        self._loop_lock = threading.Lock()

    def fill(self, interpreters: Sequence[LiteRTModel]) -> None:
        """The first interpreter is the event loop's; the others serve worker threads."""
        self._loop_interpreter = interpreters[0]
        for interpreter in interpreters[1:]:
            self._queue.put(interpreter)

    def classify(self, pixels: np.ndarray, abandoned: threading.Event | None = None) -> np.ndarray:
        """Probabilities for (N, 28, 28) pixels, on a pooled interpreter (blocks while none);
        stops between chunks once `abandoned` is set."""
        interpreter = self._queue.get()
        try:
            return self._run(interpreter, pixels, abandoned)
        finally:
            self._queue.put(interpreter)

    def classify_on_loop(self, pixels: np.ndarray) -> np.ndarray:
        """`classify` on the event loop's own interpreter: never waits for a worker thread
        (a pooled one when the loop's is busy: only when two loops share a recognizer)."""
        own = self._loop_interpreter
        if own is None or not self._loop_lock.acquire(blocking=False):
            return self.classify(pixels)
        try:
            return self._run(own, pixels)
        finally:
            self._loop_lock.release()

    def _run(
        self,
        interpreter: LiteRTModel,
        pixels: np.ndarray,
        abandoned: threading.Event | None = None,
    ) -> np.ndarray:
        started = time.perf_counter()
        chunks = []
        # Chunk by chunk (~2 ms each), so that abandoned work stops within one chunk.
        for start in range(0, len(pixels), CHUNK_SIZE):
            stop_if(abandoned)
            chunk = pixels[start : start + CHUNK_SIZE]
            chunks.append(interpreter.predict(chunk, batch_size=CHUNK_SIZE))
        raw = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]
        if self._observer is not None:
            self._observer.inference_done(time.perf_counter() - started)
        probabilities = raw.astype(np.float64)
        np.maximum(probabilities, 0.0, out=probabilities)
        probabilities /= np.add.reduce(probabilities, axis=1, keepdims=True)
        return probabilities
