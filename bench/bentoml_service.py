"""The peer: the same .tflite and preprocessing, served the BentoML 1.4 way.

Idiomatic and minimal: a `@bentoml.service` class, one interpreter per worker, and a
batchable API so BentoML's adaptive batching coalesces concurrent requests. Runs in its
own venv (bench/.venv-bentoml) with this repository on PYTHONPATH for
`service.imaging.preprocess`; the model path comes from BENCH_MODEL.

    bentoml serve bench.bentoml_service:Digits --port PORT
"""

from __future__ import annotations

import base64
import os

import bentoml
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from service.imaging.preprocess import preprocess_image

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


@bentoml.service(workers=WORKERS, traffic={"timeout": 30})
class Digits:
    def __init__(self) -> None:
        self.interpreter = Interpreter(model_path=os.environ["BENCH_MODEL"], num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def predict(self, images: list[str]) -> list[list[float]]:
        pixels = np.stack([preprocess_image(base64.b64decode(image)) for image in images])
        self.interpreter.resize_tensor_input(self.input, [len(images), 28, 28, 1])
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self.input, pixels[..., np.newaxis])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).tolist()
