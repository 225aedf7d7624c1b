"""`Recognizer`: the verified model and its interpreters, recognizing digits in bytes or arrays.

One object for every caller: the HTTP APIs (`/v1`, uploads, `/v2`), `digits-score
--local`, batch jobs and the benchmarks. It takes encoded image files (`bytes`) or
preprocessed pixels and returns arrays; it knows nothing of requests, responses or
metrics libraries (timings go to an `InferenceObserver`).

A LiteRT interpreter is not thread-safe, so each of the `interpreters` instances is lent
to one caller at a time (service/runtime/pool.py). From the event loop (`*_async`),
decoding, preprocessing and inference run in worker threads, except for small single
images (`inline_max_bytes`): those run on the loop with its own interpreter, optionally
micro-batched (service/runtime/batcher.py), since a thread hop costs as much as the
whole pipeline for a 28×28 PNG (measured in bench/).

Work whose caller gave up (deadline, client gone) stops within one image
(service/runtime/abandon.py). The images of each `*_async` call are counted by the
process's admission control (service/runtime/admission.py) while they are in flight, and
the call is refused at once when the process already has too much to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence, Sized
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np

from service.errors import DigitsError, InvalidImageError, ModelLoadError, ModelNotReadyError
from service.imaging.decode import declared_pixels
from service.imaging.preprocess import preprocess_image, preprocess_images
from service.runtime.abandon import abandon_on_exit, in_thread, stop_if
from service.runtime.admission import Admission
from service.runtime.batcher import MicroBatcher
from service.runtime.limits import Limits
from service.runtime.loader import VerifiedModel, load_verified_model
from service.runtime.pool import InferenceObserver, InterpreterPool
from service.runtime.scores import Scores, split_outputs
from service.settings import Settings

logger = logging.getLogger(__name__)

# Decoding on the event loop blocks every other request meanwhile, so only images that
# are small in bytes AND in declared pixels qualify: a 13 KB PNG can declare 3000×3000
# pixels and take ~100 ms to decode, which belongs in a worker thread.
INLINE_MAX_PIXELS = 128 * 128

State = Literal["loading", "ready", "draining", "failed"]
T = TypeVar("T", bound=Sized)  # bytes, or e.g. base64 text: `len` is its size as sent


class Recognition(NamedTuple):
    """What the model saw and what it said, one row per image, in input order."""

    pixels: np.ndarray  # (N, 28, 28) float32 in [0, 1], white digit on black
    # (N, 10) float64, each digit's probability: the model's own, so that with the
    # not-a-digit output a row sums to 1 − not_a_digit (to 1 without it).
    probabilities: np.ndarray
    not_a_digit: np.ndarray | None  # (N,) float64; None for a model without the output


class Recognizer:
    """Loads and verifies the model once, then recognizes digits from many threads."""

    def __init__(self, settings: Settings, observer: InferenceObserver | None = None) -> None:
        self.settings = settings
        self.limits = Limits.of(settings)
        self._observer = observer
        self._lock = threading.Lock()
        self._model: VerifiedModel | None = None
        self._failure: str | None = None
        # Set on SIGTERM (service/server/shutdown.py): still serving, but no longer ready.
        self._draining = False
        self._pool = InterpreterPool(observer)
        # Callers run in up to 40 worker threads; without a bound, 40 pixel-limit-sized
        # images (up to 13 bytes per pixel each while decoded) could be decoded at once.
        self._decoders = threading.BoundedSemaphore(settings.decode_threads)
        self.admission = Admission(
            settings.max_queued_images,
            on_refused=observer.request_shed if observer is not None else None,
        )
        self._batcher = (
            MicroBatcher(
                self._pool.classify_on_loop,
                max_batch=settings.batch_max_size,
                on_queue_wait=observer.queue_waited if observer is not None else None,
            )
            if settings.batching
            else None
        )

    @classmethod
    def open(cls, settings: Settings | None = None, **overrides: Any) -> Recognizer:
        """A loaded recognizer, for use in process: `settings` (default: from the `DIGITS_*`
        environment) with `overrides`, e.g. `Recognizer.open(model_card="models/model.json")`."""
        if settings is None:
            chosen = Settings(**overrides)
        else:  # validated again, so that overrides are parsed like any setting
            chosen = Settings.model_validate(settings.model_dump() | overrides)
        recognizer = cls(chosen)
        recognizer.load()
        return recognizer

    @property
    def state(self) -> State:
        if self._draining:
            return "draining"
        if self._model is not None:
            return "ready"
        return "failed" if self._failure is not None else "loading"

    @property
    def failure(self) -> str | None:
        """Why loading failed, if it did."""
        return self._failure

    @property
    def model(self) -> VerifiedModel:
        """The verified model; `ModelNotReadyError` until it is loaded."""
        model = self._model
        if model is None:
            loading = self._failure is None
            raise ModelNotReadyError(
                "the model is still loading" if loading else "the model failed to load"
            )
        return model

    def start_draining(self) -> None:
        """Report not-ready from now on, so traffic moves away; recognition still works."""
        self._draining = True

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
            self._pool.fill(model.interpreters)
            # Publishing the model last makes the recognizer "ready" only once it can serve.
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

    # ------------------------------------------------------------ in the caller's thread

    def classify(self, pixels: np.ndarray, abandoned: threading.Event | None = None) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] → (N, 10) float64 probabilities of the digits,
        summing to 1 (to 1 − not_a_digit for a model with that output: see `score`)."""
        return self.score(pixels, abandoned).probabilities

    def score(self, pixels: np.ndarray, abandoned: threading.Event | None = None) -> Scores:
        """`classify`, with the not-a-digit probabilities of a model that has them."""
        self.model  # noqa: B018 - raises ModelNotReadyError before any interpreter is taken
        return split_outputs(self._pool.classify(pixels, abandoned))

    def recognize(self, images: Sequence[bytes]) -> Recognition:
        """Encoded image files (PNG, JPEG, ...) → what the model saw, and what it said.

        A bad image raises a `DigitsError` whose `index` names it.
        """
        return self._recognize_all(images, _identity, None)

    # ----------------------------------------------------------- from the event loop

    async def score_async(self, pixels: np.ndarray) -> Scores:
        """`score`, in a worker thread; `OverloadedError` when too busy."""
        self.model  # noqa: B018
        self._requested(len(pixels))
        if len(pixels) == 1:
            # One image, as a small upload: on the loop, micro-batched with the others (a
            # thread hop cost more than its inference; the /v2 UINT8 tensor, issue 23).
            with self.admission.admit(1):
                if self._batcher is None:
                    return split_outputs(self._pool.classify_on_loop(pixels))
                return split_outputs(await self._batcher.submit(pixels))
        abandoned = threading.Event()
        with self.admission.admit(len(pixels)), abandon_on_exit(abandoned):
            return split_outputs(await in_thread(self._pool.classify, pixels, abandoned))

    async def recognize_async(
        self, images: Sequence[T], read: Callable[[T], bytes] | None = None
    ) -> Recognition:
        """`recognize`, without blocking the event loop for long; `OverloadedError` at once
        when the process is too busy.

        `read` turns each item into the file's bytes (e.g. from base64) where the image is
        decoded, in a worker thread, its errors naming the item's index like any other.
        """
        self.model  # noqa: B018
        self._requested(len(images))
        with self.admission.admit(len(images)):
            return await self._recognize_async(images, read or _identity)

    def _requested(self, count: int) -> None:
        if self._observer is not None:
            self._observer.images_requested(count)

    async def _recognize_async(
        self, images: Sequence[T], to_bytes: Callable[[T], bytes]
    ) -> Recognition:
        if len(images) == 1 and len(images[0]) <= self.settings.inline_max_bytes:
            # Small as sent: read on the loop (a bad one is reported at once); decoded
            # there too unless its header declares more pixels than is cheap.
            data = self._read(0, images[0], to_bytes)
            if _cheap_to_decode(data):
                return await self._recognize_inline(data)
            return await self._recognize_in_threads([data], _identity)
        return await self._recognize_in_threads(images, to_bytes)

    async def _recognize_in_threads(
        self, images: Sequence[Any], to_bytes: Callable[[Any], bytes]
    ) -> Recognition:
        # One worker thread per request, however big: LiteRT's invoke holds the GIL, and
        # two threads splitting one batch only took turns at it, slower than one thread
        # (a batch of 256 28×28 PNGs: 25 ms split in two, 16 ms whole; Intel Xeon).
        abandoned = threading.Event()  # only threads need telling (runtime/abandon.py)
        with abandon_on_exit(abandoned):
            return await in_thread(self._recognize_all, images, to_bytes, abandoned)

    async def _recognize_inline(self, data: bytes) -> Recognition:
        # Unbounded by `_decoders`: waiting for a thread's decode would block the loop,
        # and the loop decodes one image at a time anyway.
        pixels = self._preprocess_now(0, data)[np.newaxis]
        if self._batcher is None:
            return Recognition(pixels, *split_outputs(self._pool.classify_on_loop(pixels)))
        return Recognition(pixels, *split_outputs(await self._batcher.submit(pixels)))

    def _recognize_all(
        self, images: Sequence[T], read: Callable[[T], bytes], abandoned: threading.Event | None
    ) -> Recognition:
        def preprocess(index: int, data: bytes) -> np.ndarray:
            stop_if(abandoned)
            return self._preprocess(index, data, abandoned=abandoned)

        uploads = []
        for index, item in enumerate(images):
            try:
                uploads.append(self._read(index, item, read))
            except DigitsError:
                preprocess_images(uploads, preprocess)  # an earlier bad image is named first
                raise
        pixels = preprocess_images(uploads, preprocess)
        return Recognition(pixels, *self.score(pixels, abandoned))

    def _read(self, index: int, item: T, read: Callable[[T], bytes]) -> bytes:
        try:
            return read(item)
        except DigitsError as error:
            raise error.with_index(index) from None

    def _preprocess(
        self, index: int, data: bytes, abandoned: threading.Event | None = None
    ) -> np.ndarray:
        with self._decoders:
            stop_if(abandoned)  # again: waiting for a decoder may have taken a while
            return self._preprocess_now(index, data)

    def _preprocess_now(self, index: int, data: bytes) -> np.ndarray:
        try:
            return preprocess_image(data, max_pixels=self.settings.max_pixels)
        except DigitsError as error:
            raise error.with_index(index) from None
        except Exception:
            # Preprocessing promises DigitsError for any bytes; if that promise breaks,
            # the caller still sent a bad image, and blaming the server would be wrong.
            logger.exception("unexpected error preprocessing image %d", index)
            raise InvalidImageError("cannot decode image", index=index) from None


def _identity(data: Any) -> bytes:
    return data


def _cheap_to_decode(data: bytes) -> bool:
    pixels = declared_pixels(data)
    return pixels is None or pixels <= INLINE_MAX_PIXELS


__all__ = ["ModelLoadError", "Recognition", "Recognizer", "Scores"]
