"""The floor: the bare LiteRT interpreter, set_tensor + invoke + get_tensor, nothing else.

Every serving figure is compared with this: it is what the hardware and LiteRT can do
with this model on one thread, before any HTTP, JSON, decoding or preprocessing.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def measure_floor(path: Path, batch: int, seconds: float, repeats: int = 3) -> dict[str, float]:
    """Images/s and µs per image for `batch` images per invoke (median of `repeats`)."""
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    detail = interpreter.get_input_details()[0]
    shape = [batch, *detail["shape"][1:]]
    interpreter.resize_tensor_input(detail["index"], shape, strict=False)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]
    rng = np.random.default_rng(0)
    if np.dtype(detail["dtype"]) == np.float32:
        data = rng.random(shape, dtype=np.float32)
    else:
        data = rng.integers(-128, 128, size=shape).astype(detail["dtype"])

    def once() -> None:
        interpreter.set_tensor(detail["index"], data)
        interpreter.invoke()
        interpreter.get_tensor(output)

    for _ in range(5):
        once()
    rates = []
    for _ in range(repeats):
        calls = 0
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds / repeats:
            once()
            calls += 1
        rates.append(calls * batch / elapsed)
    rate = statistics.median(rates)
    return {"images_per_s": round(rate, 1), "us_per_image": round(1e6 / rate, 1)}
