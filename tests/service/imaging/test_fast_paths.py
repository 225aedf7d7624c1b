"""The serving fast paths give the same answers as the plain path.

Small single images run on the event loop (micro-batched), a batch's MNIST-ready PNGs are
checked together (`preprocess_images`), and `python -m service` forks one worker per
core: none of that may change a prediction, an error, or how the process stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import MODEL_CARD, REPO_ROOT, png_base64
from tests.subprocess_server import children

Digits = tuple[np.ndarray, np.ndarray]


def _probabilities(client: TestClient, images: list[str]) -> np.ndarray:
    response = client.post("/v1/predict", json={"images": [{"data": i} for i in images]})
    assert response.status_code == 200, response.text
    return np.array([p["probabilities"] for p in response.json()["predictions"]])


def test_inline_batched_and_threaded_paths_agree(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    images = [png_base64(digit) for digit in clear_digits[0][:6]]
    answers = []
    for overrides in (
        {},  # inline on the loop, micro-batched (the default)
        {"batching": False},  # inline, one interpreter call each
        {"inline_max_bytes": 0},  # every request in a worker thread
    ):
        with TestClient(make_app(**overrides)) as client:
            answers.append(np.concatenate([_probabilities(client, [i]) for i in images]))
    np.testing.assert_allclose(answers[1], answers[0], rtol=1e-6)
    np.testing.assert_allclose(answers[2], answers[0], rtol=1e-6)
    assert (answers[0].argmax(axis=1) == clear_digits[1][:6]).all()


def test_a_big_mixed_batch_keeps_order_and_names_the_first_bad_image(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    # Every third image is off-centre (the general path), the rest are MNIST-ready (the
    # batch's fast path): each must get the answer it gets alone, in its place.
    digits, labels = clear_digits
    images = []
    for i in range(96):
        digit = digits[i % len(digits)]
        images.append(png_base64(np.roll(digit, 5, axis=1) if i % 3 == 0 else digit))
    expected = np.array([labels[i % len(digits)] for i in range(96)])
    with TestClient(make_app()) as client:
        alone = np.concatenate([_probabilities(client, [image]) for image in images])
        together = _probabilities(client, images)
        blank = png_base64(np.zeros((28, 28), np.uint8))  # no digit
        bad = list(images)
        bad[70] = bad[90] = blank
        blanks = client.post("/v1/predict", json={"images": [{"data": i} for i in bad]})
        bad[80] = "not base64!"  # read before any image is decoded, yet not named first
        mixed = client.post("/v1/predict", json={"images": [{"data": i} for i in bad]})
    np.testing.assert_allclose(together, alone, rtol=1e-6)
    assert (together.argmax(axis=1) == expected).all()
    for response in (blanks, mixed):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["index"] == 70


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_forked_workers_serve_one_port_and_stop_together(clear_digits: Digits) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DIGITS_MODEL_CARD": str(MODEL_CARD),
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_PORT": str(port),
        "DIGITS_WORKERS": "2",
        "DIGITS_DRAIN_SECONDS": "0",
        "DIGITS_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        workers = children(process.pid)
        assert len(workers) == 2, "DIGITS_WORKERS=2: two forked workers, the parent supervises"
        body = {"images": [{"data": png_base64(clear_digits[0][0])}]}
        for _ in range(20):  # fresh connections land on either process
            response = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=body, timeout=5)
            assert response.status_code == 200
            assert response.json()["predictions"][0]["digit"] == clear_digits[1][0]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        for child in workers:
            assert not Path(f"/proc/{child}").exists() or _is_zombie(child)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_only_images_small_in_pixels_are_decoded_on_the_event_loop() -> None:
    """A few KB of PNG can declare millions of pixels: such an image must go to a thread.
    (Small in bytes as sent is the other condition: `DIGITS_INLINE_MAX_BYTES`.)"""
    import io

    from PIL import Image

    from service.runtime.recognizer import _cheap_to_decode

    def png(size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("L", size, 255).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    large = png((2500, 2500))
    assert len(large) < 16384  # small in bytes...
    assert not _cheap_to_decode(large)  # ...but not cheap to decode
    assert _cheap_to_decode(png((28, 28)))
    assert _cheap_to_decode(b"not an image")  # the inline path reports it as fast
