"""Issue 23's request forms (bench/protocols.py), each sent to a real server: a 200 and the
right digit, and the load generators send them without an error. Speed is `make bench`'s."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton

from bench.grpc_load import grpc_inputs, run_grpc_load
from bench.loadgen import run_load
from bench.protocols import HEADER_LENGTH, http_request, uint8_pixels
from bench.servers import HOST, free_port, running
from samples.uploads import encode_png, load_test_digits
from service.model_card import ModelCard
from tests.conftest import MODEL_CARD


def _digit(form: str, body: bytes, header_length: str | None) -> int:
    """The digit an HTTP form's response gives (`header_length`: its
    Inference-Header-Content-Length)."""
    if form == "v1_json":
        return int(json.loads(body)["predictions"][0]["digit"])
    assert header_length is not None
    length = int(header_length)
    offset = length
    for output in json.loads(body[:length])["outputs"]:  # every output, in binary
        size = output["parameters"]["binary_data_size"]
        if output["name"] == "digit":
            return int(np.frombuffer(body[offset : offset + size], "<i8")[0])
        offset += size
    raise AssertionError("no digit output")


def test_uint8_pixels_are_the_digit_itself() -> None:
    """A clean MNIST digit is already what the model sees: preprocessing keeps its pixels."""
    digits, _ = load_test_digits(3)
    for digit in digits:
        assert np.array_equal(uint8_pixels(encode_png(digit)), digit)


def test_every_form_is_answered_with_the_right_digit(tmp_path: Path) -> None:
    card = ModelCard.load(MODEL_CARD)
    port, grpc_port = free_port(), free_port()
    env = {
        "DIGITS_MODEL_CARD": str(MODEL_CARD),
        "DIGITS_HOST": HOST,
        "DIGITS_PORT": str(port),
        "DIGITS_GRPC_PORT": str(grpc_port),
        "DIGITS_WORKERS": "1",
    }
    digits, labels = load_test_digits(4)
    pngs = [encode_png(digit) for digit in digits]
    command = [sys.executable, "-m", "service"]
    with running("protocols", command, port, env={**os.environ, **env}, log_dir=tmp_path):
        for form in ("v1_json", "v2_binary_bytes", "v2_binary_uint8"):
            for png, label in zip(pngs, labels, strict=True):
                request = http_request(form, card.name, png)
                sent = urllib.request.Request(
                    f"http://{HOST}:{port}{request.path}",
                    data=request.body,
                    headers={"Content-Type": request.content_type, **request.headers},
                )
                with urllib.request.urlopen(sent, timeout=10) as response:
                    assert response.status == 200, form
                    answer = _digit(form, response.read(), response.headers[HEADER_LENGTH])
                assert answer == label, form
            payloads = [http_request(form, card.name, png).raw(HOST, port) for png in pngs]
            load = run_load(HOST, port, payloads, concurrency=2, requests=20, time_limit=20)
            assert (load.requests, load.errors) == (20, 0), load.first_error
        with triton.InferenceServerClient(f"{HOST}:{grpc_port}") as client:
            for png, label in zip(pngs, labels, strict=True):
                result = client.infer(card.name, grpc_inputs(png))
                assert result.as_numpy("digit").tolist() == [label]
        inputs = [grpc_inputs(png) for png in pngs]
        address = f"{HOST}:{grpc_port}"
        load = run_grpc_load(address, card.name, inputs, concurrency=4, requests=20, time_limit=20)
        assert (load.requests, load.errors) == (20, 0), load.first_error
