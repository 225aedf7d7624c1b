"""Accuracy measured end to end, through /v1/predict, as a client would get it.

(a) Real MNIST test digits sent as PNGs must score what the interpreter scores on the
    raw arrays (the API adds no error), and, on the full test split, what the card says.
(b) Realistic uploads (photos of paper, canvas drawings...) must score at least
    `MIN_UPLOAD_ACCURACY` in every style, a digit answered as "not a digit" counting as wrong.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from samples.mnist import shared_mnist
from samples.uploads import STYLES, encode_png, load_test_digits, make_upload
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer

BATCH = 250
TOLERANCE_PP = 0.1
UPLOADS_PER_STYLE = 500
MIN_UPLOAD_ACCURACY = 0.99  # each style


REFUSED = -1  # a digit the service answered as not a digit


def _api_digits(client: TestClient, payloads: list[str], refusals: bool = False) -> np.ndarray:
    """The digit of each answer; with `refusals`, `REFUSED` where `is_digit` is false."""
    digits: list[int] = []
    for start in range(0, len(payloads), BATCH):
        images = [{"data": data} for data in payloads[start : start + BATCH]]
        response = client.post("/v1/predict", json={"images": images, "top_k": 1})
        assert response.status_code == 200, response.text
        digits.extend(
            REFUSED if refusals and not p["is_digit"] else p["digit"]
            for p in response.json()["predictions"]
        )
    return np.array(digits)


@pytest.fixture(scope="module")
def test_split() -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """All test digits available, their PNG uploads, and whether this is the full split."""
    images, labels = load_test_digits()
    payloads = [base64.b64encode(encode_png(image)).decode("ascii") for image in images]
    full = len(images) == 10_000 and shared_mnist() is not None
    return images, labels, payloads, full


@pytest.mark.parametrize("model_file", ["mnist_cnn_dynamic.tflite", "mnist_cnn_int8.tflite"])
def test_mnist_accuracy_through_the_api(
    make_app: Callable[..., FastAPI],
    loaded_recognizer: Callable[[str | None], Recognizer],
    model_card: ModelCard,
    test_split: tuple[np.ndarray, np.ndarray, list[str], bool],
    capsys: pytest.CaptureFixture[str],
    model_file: str,
) -> None:
    images, labels, payloads, full = test_split
    artifact = model_card.artifact_for_file(model_file)
    assert artifact is not None, f"{model_file} is not in the card"

    raw = loaded_recognizer(model_file).classify(images.astype(np.float32) / 255)
    raw_accuracy = float((raw.argmax(axis=1) == labels).mean())
    with TestClient(make_app(model_file=model_file)) as client:
        api_accuracy = float((_api_digits(client, payloads) == labels).mean())

    with capsys.disabled():
        split = "full test split" if full else "committed sample"
        card = "n/a" if artifact.test_accuracy is None else f"{artifact.test_accuracy:.2%}"
        print(
            f"\n[accuracy a] {model_file} on {len(labels)} MNIST test digits ({split}): "
            f"API {api_accuracy:.2%}, interpreter on raw arrays {raw_accuracy:.2%}; "
            f"card (full split) {card}"
        )
    assert abs(api_accuracy - raw_accuracy) * 100 <= TOLERANCE_PP
    if full:
        assert artifact.test_accuracy is not None
        assert abs(api_accuracy - artifact.test_accuracy) * 100 <= TOLERANCE_PP


def test_realistic_upload_accuracy(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    # A random draw, not the first N: the start of the MNIST test split is easier than its end.
    all_images, all_labels = load_test_digits()
    chosen = np.random.default_rng(7).choice(len(all_images), UPLOADS_PER_STYLE, replace=False)
    images, labels = all_images[chosen], all_labels[chosen]
    correct: dict[str, float] = {}
    refused: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for number, style in enumerate(STYLES):
            # Building uploads (PNG/JPEG encoding) costs more than serving them; Pillow
            # encodes without the GIL, so threads help. One seed per upload keeps the
            # set identical whatever the thread scheduling.
            def upload(index: int, style: str = style, number: int = number) -> str:
                rng = np.random.default_rng([number, index])
                return base64.b64encode(make_upload(images[index], style, rng)).decode("ascii")

            payloads = list(pool.map(upload, range(len(images))))
            answers = _api_digits(client, payloads, refusals=True)
            correct[style] = float((answers == labels).mean())
            refused[style] = float((answers == REFUSED).mean())
    overall = float(np.mean(list(correct.values())))

    with capsys.disabled():
        figures = ", ".join(
            f"{style} {accuracy:.2%} ({refused[style]:.1%} refused)"
            for style, accuracy in correct.items()
        )
        print(f"\n[accuracy b] uploads, {len(labels)} per style: {figures}; overall {overall:.2%}")
    below = {
        style: accuracy for style, accuracy in correct.items() if accuracy < MIN_UPLOAD_ACCURACY
    }
    assert not below, f"styles under {MIN_UPLOAD_ACCURACY:.0%}: {below}"
