"""Shared fixtures: the committed model, loaded once, and apps/clients built around it; the
10-output model committed before the not-a-digit output, for the compatibility tests.

Service imports stay inside the fixtures so that trainer tests collect even while
the service is broken, and so that nothing here drags in more than a test needs.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from service.model_card import ModelCard
    from service.runtime.recognizer import Recognizer
    from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = REPO_ROOT / "models"
MODEL_CARD = MODELS / "model.json"
SERVICE_TESTS = REPO_ROOT / "tests" / "service"
# A copy of models/ as it was before the not-a-digit output (its card and the file it
# serves): 10 outputs, which the service must keep serving as it always did.
TEN_OUTPUT_CARD = REPO_ROOT / "tests" / "fixtures" / "model10" / "model.json"


def pytest_configure(config: pytest.Config) -> None:
    # Starlette 1.x nags that its TestClient prefers `httpx2`; `httpx` works fine here.
    config.addinivalue_line("filterwarnings", r"ignore:Using `httpx` with `starlette\.testclient`")


@pytest.fixture(autouse=True)
def _no_service_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Service settings read `DIGITS_*`; a developer's shell must not change what tests see.

    Service tests only, and only the service's variables (DIGITS_MNIST_DATA is the trainer's).
    """
    if SERVICE_TESTS not in request.node.path.parents:
        return
    from service.settings import Settings

    for name in Settings.model_fields:
        monkeypatch.delenv(f"DIGITS_{name.upper()}", raising=False)


@pytest.fixture(scope="session")
def model_card() -> ModelCard:
    from service.model_card import ModelCard

    if not MODEL_CARD.is_file():
        pytest.fail(f"{MODEL_CARD} is missing: the trained model must be committed in models/")
    return ModelCard.load(MODEL_CARD)


@pytest.fixture(scope="session")
def tflite_files(model_card: ModelCard) -> list[str]:
    """Every .tflite artifact the card lists (dynamic-range and full-int8)."""
    return sorted(a.file for a in model_card.artifacts.values() if a.format == "tflite")


@pytest.fixture(scope="session")
def make_settings() -> Callable[..., Settings]:
    """Settings pointing at the committed card, with any field overridden."""
    from service.settings import Settings

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("model_card", MODEL_CARD)
        return Settings(**overrides)

    return make


@pytest.fixture(scope="session")
def loaded_recognizer(
    model_card: ModelCard, make_settings: Callable[..., Settings]
) -> Callable[[str | None], Recognizer]:
    """A loaded recognizer per model file (None: the serving default), built once per session.

    Its timings go to the metrics of whichever app serves the request, as in the server.
    """
    from service.middleware.metrics import InferenceMetrics
    from service.runtime.recognizer import Recognizer

    cache: dict[str | None, Recognizer] = {}

    def get(model_file: str | None = None) -> Recognizer:
        if model_file not in cache:
            settings = make_settings(model_file=model_file)
            recognizer = Recognizer(settings, observer=InferenceMetrics())
            recognizer.load()
            cache[model_file] = recognizer
        return cache[model_file]

    return get


@pytest.fixture
def make_app(
    make_settings: Callable[..., Settings], loaded_recognizer: Callable[[str | None], Recognizer]
) -> Callable[..., FastAPI]:
    """An app around the committed model, loaded and verified before the app starts."""
    from service.app import create_app
    from service.middleware.metrics import InferenceMetrics
    from service.runtime.recognizer import Recognizer

    def make(model_file: str | None = None, **overrides: Any) -> FastAPI:
        if not overrides:
            return create_app(make_settings(model_file=model_file), loaded_recognizer(model_file))
        # Limits live in the recognizer's settings too: load a fresh one (tens of ms).
        settings = make_settings(model_file=model_file, **overrides)
        recognizer = Recognizer(settings, observer=InferenceMetrics())
        recognizer.load()
        return create_app(settings, recognizer)

    return make


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as test_client:
        yield test_client


def png_base64(image: np.ndarray) -> str:
    """Base64 PNG of a uint8 (or bool) array, the way a client would send it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="session")
def clear_digits(
    loaded_recognizer: Callable[[str | None], Recognizer],
) -> tuple[np.ndarray, np.ndarray]:
    """30 real MNIST test digits (uint8 28×28) the model gets right by a wide margin.

    Tests about the API, not about accuracy, need inputs whose answer is not in doubt.
    A margin over the runner-up, not a fixed confidence: label smoothing caps confidence.
    """
    from samples.uploads import load_test_digits

    images, labels = load_test_digits(300)
    probabilities, not_a_digit = loaded_recognizer(None).score(images.astype(np.float32) / 255)
    runner_up, best = np.sort(probabilities, axis=1)[:, -2:].T
    clear = (probabilities.argmax(axis=1) == labels) & (best - runner_up >= 0.5)
    if not_a_digit is not None:  # and no doubt that they are digits at all
        clear &= not_a_digit < 0.25
    assert clear.sum() >= 30, "the committed model is unsure of most MNIST test digits"
    return images[clear][:30], labels[clear][:30]


@pytest.fixture(scope="session")
def not_a_digit_card(model_card: ModelCard) -> ModelCard:
    """The committed card, for tests of the not-a-digit output (the committed model has it;
    the 10-output model's tests use `ten_output_client`)."""
    if model_card.not_a_digit is None:
        pytest.fail(f"{MODEL_CARD} describes a model without the not-a-digit output")
    return model_card


@pytest.fixture(scope="session")
def non_digits(
    not_a_digit_card: ModelCard, loaded_recognizer: Callable[[str | None], Recognizer]
) -> dict[str, bytes]:
    """Name → PNG of pictures that are no digit (tests/non_digits.py) which the committed
    model refuses beyond doubt (not-a-digit ≥ 0.9): inputs whose answer is not in doubt,
    chosen by asking the model, as `clear_digits` are."""
    from tests.non_digits import non_digit_pngs

    files = non_digit_pngs()
    not_a_digit = loaded_recognizer(None).recognize(list(files.values())).not_a_digit
    assert not_a_digit is not None
    clear = {
        name: png for (name, png), p in zip(files.items(), not_a_digit, strict=True) if p >= 0.9
    }
    assert len(clear) >= 2, f"the committed model takes most shapes for digits: {not_a_digit}"
    return clear


@pytest.fixture(scope="session")
def ten_output_recognizer(make_settings: Callable[..., Settings]) -> Recognizer:
    """The 10-output model (`TEN_OUTPUT_CARD`), loaded once."""
    from service.middleware.metrics import InferenceMetrics
    from service.runtime.recognizer import Recognizer

    recognizer = Recognizer(make_settings(model_card=TEN_OUTPUT_CARD), observer=InferenceMetrics())
    recognizer.load()
    return recognizer


@pytest.fixture
def ten_output_client(
    make_settings: Callable[..., Settings], ten_output_recognizer: Recognizer
) -> Iterator[TestClient]:
    """A client of an app serving the 10-output model."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    app = create_app(make_settings(model_card=TEN_OUTPUT_CARD), ten_output_recognizer)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def held_model_load(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """`Recognizer.load` waits (at most 30 s) until the returned event is set.

    An app created meanwhile stays "loading": for readiness and retry tests.
    """
    from service.runtime.recognizer import Recognizer

    release = threading.Event()
    real_load = Recognizer.load

    def held_load(self: Recognizer) -> None:
        release.wait(timeout=30)
        real_load(self)

    monkeypatch.setattr(Recognizer, "load", held_load)
    yield release
    release.set()


@pytest.fixture(scope="module")
def base_url(
    make_settings: Callable[..., Settings], loaded_recognizer: Callable[[str | None], Recognizer]
) -> Iterator[str]:
    """The URL of a live server (a real socket, in a thread) around the committed model."""
    from service.app import create_app
    from tests.loopback_server import live_server

    with live_server(create_app(make_settings(), loaded_recognizer(None))) as url:
        yield url
