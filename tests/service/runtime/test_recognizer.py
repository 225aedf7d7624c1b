"""The interpreter pool under concurrent requests, inference in both input dtypes, and the
effect of each recognizer setting (decode and interpreter concurrency, the inline path,
micro-batching), observed through counters rather than timings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

import service.runtime.recognizer
from service.api import dataplane
from service.api.schemas import PredictRequest, PredictResponse
from service.runtime.interpreter import LiteRTModel
from service.runtime.pool import CHUNK_SIZE
from service.runtime.recognizer import Recognizer
from service.settings import Settings
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
    # ~600 images at once: no load shedding here, every request must get its own answer.
    app = make_app(interpreters=2, max_queued_images=0)

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
    loaded_recognizer: Callable[[str | None], Recognizer], clear_digits: Digits
) -> None:
    recognizer = loaded_recognizer(None)
    images = clear_digits[0].astype(np.float32) / 255
    batch = np.concatenate([images] * (2 * CHUNK_SIZE // len(images) + 2))[: 2 * CHUNK_SIZE + 3]
    together = recognizer.classify(batch)
    alone = np.concatenate([recognizer.classify(image[None]) for image in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    _assert_distributions(*recognizer.score(batch))


def test_float_and_int8_models_agree(
    loaded_recognizer: Callable[[str | None], Recognizer],
    tflite_files: list[str],
    clear_digits: Digits,
) -> None:
    images, labels = clear_digits
    x = images.astype(np.float32) / 255
    for model_file in tflite_files:
        probabilities, not_a_digit = loaded_recognizer(model_file).score(x)
        assert (probabilities.argmax(axis=1) == labels).all(), model_file
        _assert_distributions(probabilities, not_a_digit)


def _assert_distributions(probabilities: np.ndarray, not_a_digit: np.ndarray | None) -> None:
    """Each row, with its not-a-digit probability if the model has one, sums to 1."""
    assert (probabilities >= 0).all() and probabilities.shape[1] == 10
    total = probabilities.sum(axis=1)
    if not_a_digit is not None:
        assert not_a_digit.shape == (len(probabilities),) and (not_a_digit >= 0).all()
        total += not_a_digit
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


# --- one test per recognizer setting: each fails if its setting is ignored ---------------


def _loaded(make_settings: Callable[..., Settings], **overrides: Any) -> Recognizer:
    recognizer = Recognizer(make_settings(**overrides))
    recognizer.load()
    return recognizer


def _request(*images: np.ndarray) -> PredictRequest:
    return PredictRequest.model_validate({"images": [{"data": png_base64(i)} for i in images]})


def _predict_all(recognizer: Recognizer, requests: list[PredictRequest]) -> list[PredictResponse]:
    async def together() -> list[bytes]:
        return await asyncio.gather(*(dataplane.predict(recognizer, r) for r in requests))

    return [PredictResponse.model_validate_json(body) for body in asyncio.run(together())]


class Crowd:
    """Counts callers inside a section; each stays until `size` are in at once (at most
    10 s), then a little longer, so that a limit above `size` would be seen as exceeded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.inside = 0
        self.peak = 0
        self._guard = threading.Lock()
        self._full = threading.Event()

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        with self._guard:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            if self.inside >= self.size:
                self._full.set()
        try:
            self._full.wait(timeout=10)
            threading.Event().wait(0.1)  # room for one more, were there no limit
            yield
        finally:
            with self._guard:
                self.inside -= 1


@pytest.mark.parametrize(
    ("overrides", "sizes"),
    [
        ({"batching": False}, [1] * 7),  # off: one interpreter call per request
        ({}, [7]),  # on by default: the 7 requests arrived together, one call
        ({"batching": True, "batch_max_size": 3}, [3, 3, 1]),
    ],
)
def test_batching_settings_decide_how_many_requests_share_an_interpreter_call(
    make_settings: Callable[..., Settings],
    clear_digits: Digits,
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, Any],
    sizes: list[int],
) -> None:
    images, labels = clear_digits
    recognizer = _loaded(make_settings, **overrides)
    calls: list[int] = []
    real_predict = LiteRTModel.predict

    def counted(self: LiteRTModel, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        calls.append(len(batch))
        return real_predict(self, batch, batch_size)

    monkeypatch.setattr(LiteRTModel, "predict", counted)
    responses = _predict_all(recognizer, [_request(image) for image in images[:7]])
    assert calls == sizes
    assert [r.predictions[0].digit for r in responses] == labels[:7].tolist()


def test_inline_max_bytes_decides_which_images_are_decoded_on_the_event_loop(
    make_settings: Callable[..., Settings], clear_digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = clear_digits[0][0]
    size = len(png_base64(image))
    threads: list[threading.Thread] = []
    real_preprocess = service.runtime.recognizer.preprocess_image

    def recorded(data: bytes, **options: Any) -> np.ndarray:
        threads.append(threading.current_thread())
        return real_preprocess(data, **options)

    monkeypatch.setattr(service.runtime.recognizer, "preprocess_image", recorded)
    for limit, on_loop in ((size, True), (size - 1, False)):  # both far below the default
        threads.clear()
        _predict_all(_loaded(make_settings, inline_max_bytes=limit), [_request(image)])
        assert (threads == [threading.current_thread()]) is on_loop, limit


def test_decode_threads_bounds_how_many_images_are_decoded_at_once(
    make_settings: Callable[..., Settings], clear_digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = clear_digits
    recognizer = _loaded(make_settings, decode_threads=2)  # the default is 4
    crowd = Crowd(2)
    real_preprocess = service.runtime.recognizer.preprocess_image

    def crowded(data: bytes, **options: Any) -> np.ndarray:
        with crowd.enter():
            return real_preprocess(data, **options)

    monkeypatch.setattr(service.runtime.recognizer, "preprocess_image", crowded)
    # Two-image requests decode in worker threads, one image after the other: 4 requests
    # could decode 4 images at once but for the setting. Off-centre digits take the general
    # path (`preprocess_image`): a batch's MNIST-ready digits are checked all at once.
    off_centre = np.roll(images[:8], 5, axis=2)
    requests = [_request(off_centre[2 * i], off_centre[2 * i + 1]) for i in range(4)]
    responses = _predict_all(recognizer, requests)
    assert crowd.peak == 2
    assert [p.digit for r in responses for p in r.predictions] == labels[:8].tolist()


def test_interpreters_is_how_many_inferences_run_at_once(
    make_settings: Callable[..., Settings], clear_digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    recognizer = _loaded(make_settings, interpreters=3)  # the default is 2
    crowd = Crowd(3)
    real_predict = LiteRTModel.predict

    def crowded(self: LiteRTModel, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        with crowd.enter():
            return real_predict(self, batch, batch_size)

    monkeypatch.setattr(LiteRTModel, "predict", crowded)
    x = clear_digits[0][:1].astype(np.float32) / 255
    callers = [threading.Thread(target=recognizer.classify, args=(x,)) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert crowd.peak == 3


def _native_threads() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def test_interpreter_threads_gives_each_interpreter_its_own_cpu_threads(
    make_settings: Callable[..., Settings],
) -> None:
    # LiteRT starts `interpreter_threads` - 1 helper threads per interpreter (here 2 of
    # them: one pooled, one for the event loop): 6 for 4 threads, none for 1 (the default).
    # Asserted with room for an idle worker thread of an earlier test exiting meanwhile.
    before = _native_threads()
    single = _loaded(make_settings, interpreters=1, interpreter_threads=1)
    assert _native_threads() <= before
    before = _native_threads()
    multi = _loaded(make_settings, interpreters=1, interpreter_threads=4)
    assert _native_threads() - before >= 4
    assert single.state == multi.state == "ready"  # both still alive while counting


def test_in_process_use_as_the_readme_shows(clear_digits: Digits) -> None:
    """The library API: open the committed card, recognize files, classify arrays."""
    from service.errors import InvalidImageError
    from tests.conftest import MODEL_CARD

    images, labels = clear_digits
    recognizer = Recognizer.open(model_card=str(MODEL_CARD), interpreters=1)
    assert recognizer.state == "ready" and recognizer.settings.interpreters == 1
    files = [base64.b64decode(png_base64(image)) for image in images[:5]]
    pixels, probabilities, not_a_digit = recognizer.recognize(files)
    assert pixels.shape == (5, 28, 28) and probabilities.shape == (5, 10)
    _assert_distributions(probabilities, not_a_digit)
    assert probabilities.argmax(axis=1).tolist() == labels[:5].tolist()
    np.testing.assert_allclose(recognizer.classify(images[:5] / 255.0), probabilities, atol=1e-3)
    with pytest.raises(InvalidImageError) as bad:
        recognizer.recognize([files[0], b"not an image", files[1]])
    assert bad.value.index == 1
