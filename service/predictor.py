"""The predictor: model state, a pool of interpreters, and request → response.

Routes stay thin and call into one `Predictor`. A LiteRT interpreter is not
thread-safe, so each of the `interpreters` instances is lent to one request at a
time through a queue; decoding, preprocessing and inference run in a worker thread,
except for small single-image requests (`inline_max_bytes`): those run on the event loop
with its own interpreter, micro-batched (service/batcher.py), since a thread hop costs
as much as the whole pipeline for a 28×28 PNG (measured in bench/).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool

from service.batcher import MicroBatcher
from service.decode import declared_pixels
from service.errors import DigitsError, InvalidImageError, InvalidRequestError, ModelNotReadyError
from service.interpreter import LiteRTModel
from service.metrics import IMAGES_PER_REQUEST, INFERENCE_SECONDS, QUEUE_WAIT_SECONDS
from service.model_loader import VerifiedModel, load_verified_model
from service.preprocess import decode_base64_image, preprocess_image
from service.schemas import (
    DigitProbability,
    ImageInput,
    ModelDescription,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
    ServedArtifact,
)
from service.settings import Settings

logger = logging.getLogger(__name__)

# Measured on the committed CNN: batching amortizes almost nothing (~115-130 µs per
# image at any batch size; larger batches only grow the working set), and resizing an
# interpreter costs 5-40 µs. So a batch runs at its exact size, in chunks of at most
# this many images, and is never padded up to fixed buckets (padding costs full images).
CHUNK_SIZE = 16
# Smallest share of a request worth a thread of its own (see `_parts`).
PART_MIN = 32

State = Literal["loading", "ready", "draining", "failed"]


class Predictor:
    """Loads and verifies the model once, then serves predictions from many threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._model: VerifiedModel | None = None
        self._failure: str | None = None
        # Set on SIGTERM (service/shutdown.py): still serving, but no longer ready.
        self._draining = False
        self._pool: queue.SimpleQueue[LiteRTModel] = queue.SimpleQueue()
        # Requests run in up to 40 worker threads; without a bound, 40 pixel-limit-sized
        # images (40 MP × 4 bytes each) could be decoded at once.
        self._decoders = threading.BoundedSemaphore(settings.decode_threads)
        # Small single-image requests run on the event loop, on an interpreter of their
        # own: a hop to a worker thread costs as much as decoding a 28×28 PNG.
        self._loop_interpreter: LiteRTModel | None = None
        self._loop_interpreter_lock = threading.Lock()
        self._on_loop = threading.local()
        self._batcher = (
            MicroBatcher(
                self._loop_probabilities,
                max_batch=settings.batch_max_size,
                on_queue_wait=QUEUE_WAIT_SECONDS.observe,
            )
            if settings.batching
            else None
        )

    @property
    def state(self) -> State:
        if self._draining:
            return "draining"
        if self._model is not None:
            return "ready"
        return "failed" if self._failure is not None else "loading"

    def start_draining(self) -> None:
        """Report not-ready from now on, so traffic moves away; predictions still work."""
        self._draining = True

    @property
    def failure(self) -> str | None:
        """Why loading failed, if it did."""
        return self._failure

    def load(self) -> None:
        """Load, verify and warm up the model; raises `ModelLoadError`. Idempotent."""
        with self._lock:
            if self._model is not None:
                return
            self._failure = None
            settings = self.settings
            try:
                model = load_verified_model(
                    settings.model_card_path(),
                    settings.model_file,
                    count=settings.interpreters + 1,  # + the event loop's own
                    num_threads=settings.interpreter_threads,
                )
            except Exception as error:
                self._failure = str(error) or type(error).__name__
                raise
            self._loop_interpreter = model.interpreters[0]
            for interpreter in model.interpreters[1:]:
                self._pool.put(interpreter)
            # Publishing the model last makes the predictor "ready" only once it can serve.
            self._model = model
        logger.info(
            "serving %s %s: %s (artifact %s; interpreters=%d, threads each=%d)",
            model.card.name,
            model.card.version,
            model.artifact.file,
            model.key,
            settings.interpreters,
            settings.interpreter_threads,
        )

    def model_info(self) -> ModelInfo:
        card = self._ready_model().card
        return ModelInfo(name=card.name, version=card.version)

    def describe(self) -> ModelDescription:
        model = self._ready_model()
        return ModelDescription(
            served=ServedArtifact(key=model.key, artifact=model.artifact), card=model.card
        )

    async def predict(self, request: PredictRequest) -> PredictResponse:
        self._ready_model()
        limit = self.settings.max_images
        if len(request.images) > limit:
            raise InvalidRequestError(
                f"images: at most {limit} images per request, got {len(request.images)}"
            )
        IMAGES_PER_REQUEST.observe(len(request.images))
        images = request.images
        if len(images) == 1 and _cheap_to_decode(images[0].data, self.settings.inline_max_bytes):
            return await self._predict_inline(request)
        parts = _parts(len(images), self.settings.interpreters)
        if len(parts) == 1:
            return await run_in_threadpool(self._predict_sync, request)
        # A big batch is cut into one part per interpreter, run in parallel threads: one
        # part's inference (which releases the GIL) overlaps another's decoding.
        done = await asyncio.gather(
            *(run_in_threadpool(self._predict_part, request, *part) for part in parts),
            return_exceptions=True,
        )
        for outcome in done:  # the first failing part holds the first bad image
            if isinstance(outcome, BaseException):
                raise outcome
        pixels, probabilities = zip(*done, strict=True)
        return self._respond(request, np.concatenate(pixels), np.concatenate(probabilities))

    async def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """`probabilities` for already-preprocessed images (the V2 API), off the event loop."""
        self._ready_model()
        IMAGES_PER_REQUEST.observe(len(images))
        return await run_in_threadpool(self.probabilities, images)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] → (N, 10) float64 probabilities summing to 1."""
        with self._interpreter() as interpreter:
            started = time.perf_counter()
            raw = interpreter.predict(images, batch_size=CHUNK_SIZE)
            INFERENCE_SECONDS.observe(time.perf_counter() - started)
        probabilities = np.clip(raw.astype(np.float64), 0.0, None)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def _loop_probabilities(self, images: np.ndarray) -> np.ndarray:
        """`probabilities` on the event loop's own interpreter (see `_interpreter`)."""
        self._on_loop.active = True
        try:
            return self.probabilities(images)
        finally:
            self._on_loop.active = False

    async def _predict_inline(self, request: PredictRequest) -> PredictResponse:
        # Unbounded by `_decoders`: waiting for a thread's decode would block the loop,
        # and the loop decodes one image at a time anyway.
        pixels = self._preprocess(0, request.images[0], bounded=False)[np.newaxis]
        if self._batcher is None:
            return self._respond(request, pixels, self._loop_probabilities(pixels))
        return self._respond(request, pixels, await self._batcher.submit(pixels))

    def _predict_part(
        self, request: PredictRequest, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray]:
        images = request.images
        pixels = np.stack([self._preprocess(i, images[i]) for i in range(start, stop)])
        return pixels, self.probabilities(pixels)

    def _predict_sync(self, request: PredictRequest) -> PredictResponse:
        images = np.stack([self._preprocess(i, image) for i, image in enumerate(request.images)])
        return self._respond(request, images, self.probabilities(images))

    def _respond(
        self, request: PredictRequest, images: np.ndarray, probabilities: np.ndarray
    ) -> PredictResponse:
        predictions = [
            _prediction(
                image.id, row, request.top_k, pixels if request.return_preprocessed else None
            )
            for image, row, pixels in zip(request.images, probabilities, images, strict=True)
        ]
        return PredictResponse(model=self.model_info(), predictions=predictions)

    def _preprocess(self, index: int, image: ImageInput, *, bounded: bool = True) -> np.ndarray:
        try:
            with self._decoders if bounded else contextlib.nullcontext():
                data = decode_base64_image(image.data)
                return preprocess_image(data, max_pixels=self.settings.max_pixels)
        except DigitsError as error:
            raise error.with_index(index) from None
        except Exception:
            # Preprocessing promises DigitsError for any bytes; if that promise breaks,
            # the client still sent a bad image, and a 500 would blame the server.
            logger.exception("unexpected error preprocessing image %d", index)
            raise InvalidImageError("cannot decode image", index=index) from None

    @contextmanager
    def _interpreter(self) -> Iterator[LiteRTModel]:
        self._ready_model()
        # The event loop never waits for the pool: it has an interpreter of its own. The
        # lock is only contended when two loops share this predictor (tests).
        own = self._loop_interpreter
        on_loop = getattr(self._on_loop, "active", False)
        if own is not None and on_loop and self._loop_interpreter_lock.acquire(blocking=False):
            try:
                yield own
            finally:
                self._loop_interpreter_lock.release()
            return
        # Blocks (in a worker thread) while all are busy.
        interpreter = self._pool.get()
        try:
            yield interpreter
        finally:
            self._pool.put(interpreter)

    def _ready_model(self) -> VerifiedModel:
        model = self._model
        if model is None:
            reason = (
                "the model is still loading"
                if self._failure is None
                else "the model failed to load"
            )
            raise ModelNotReadyError(reason)
        return model


def _parts(count: int, interpreters: int) -> list[tuple[int, int]]:
    """[start, stop) ranges splitting `count` images over at most `interpreters` threads,
    none smaller than PART_MIN (below that a thread hop costs more than it saves)."""
    parts = max(1, min(interpreters, count // PART_MIN))
    bounds = [round(count * i / parts) for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def _prediction(
    image_id: str | None, row: np.ndarray, top_k: int, pixels: np.ndarray | None
) -> Prediction:
    order = np.argsort(-row, kind="stable")[:top_k]
    best = int(order[0])
    return Prediction(
        id=image_id,
        digit=best,
        confidence=float(row[best]),
        top_k=[DigitProbability(digit=int(d), probability=float(row[d])) for d in order],
        probabilities=row.tolist(),
        preprocessed=None if pixels is None else _png_base64(pixels),
    )


def _png_base64(pixels: np.ndarray) -> str:
    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# Decoding on the event loop blocks every other request meanwhile, so only images that
# are small in bytes AND in declared pixels qualify: a 13 KB PNG can declare 3000×3000
# pixels and take ~100 ms to decode, which belongs in a worker thread.
INLINE_MAX_PIXELS = 128 * 128


def _cheap_to_decode(data: str, max_bytes: int) -> bool:
    if len(data) > max_bytes:
        return False
    try:
        pixels = declared_pixels(decode_base64_image(data))
    except DigitsError:
        return True  # bad base64: the inline path reports it just as fast
    return pixels is None or pixels <= INLINE_MAX_PIXELS
