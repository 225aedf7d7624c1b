"""The LitServe peer: a `LitAPI` running the served .tflite in LiteRT, LitServe 0.2.

Idiomatic and minimal: `setup` opens one LiteRT interpreter per inference worker,
`decode_request` turns the JSON body `{"images": [base64 PNG, ...]}` into pixels with the
service's own preprocessing (`service.imaging.preprocess.preprocess_image`, from this
checkout on PYTHONPATH), `predict` runs the whole list as one invoke, `encode_response`
answers `{"probabilities": [[10 floats], ...]}`. Both bodies are pydantic models, which
LitServe hands to FastAPI to validate, as digits validates its own. A batch of 256 is
one request whose list holds 256 images. One inference worker per core
(`workers_per_device`, as LitServe's documentation advises for CPUs) and as many API
server processes (its default). Runs in its own venv (bench/.venv-litserve); the model
path comes from BENCH_MODEL.

    .venv-litserve/bin/python -m bench.litserve_app PORT
"""

# No `from __future__ import annotations`: LitServe hands decode_request's and
# encode_response's annotations to FastAPI as they are, and a string is not a model.
import base64
import os
import sys

import litserve as ls
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from pydantic import BaseModel

from service.imaging.preprocess import preprocess_image

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


class Images(BaseModel):
    images: list[str]  # base64 image files


class Probabilities(BaseModel):
    probabilities: list[list[float]]  # per image, digits 0-9


class DigitsAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.interpreter = Interpreter(model_path=os.environ["BENCH_MODEL"], num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = 1

    def decode_request(self, request: Images) -> np.ndarray:
        images = [preprocess_image(base64.b64decode(image)) for image in request.images]
        return np.stack(images)[..., np.newaxis]

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        if len(pixels) != self.batch:  # resizing costs a re-allocation: only on change
            self.interpreter.resize_tensor_input(self.input, list(pixels.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(pixels)
        self.interpreter.set_tensor(self.input, pixels)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self.output))

    def encode_response(self, output: np.ndarray) -> Probabilities:
        return Probabilities(probabilities=output.tolist())


def main(port: int) -> None:
    server = ls.LitServer(DigitsAPI(), accelerator="cpu", workers_per_device=WORKERS)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
