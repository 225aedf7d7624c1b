"""In-process pipeline: decode + preprocess (service.imaging.preprocess) + inference, per image.

No HTTP: the cost of turning an upload into probabilities with the service's own
preprocessing function and interpreter wrapper, one image at a time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from service.imaging.preprocess import preprocess_image
from service.runtime.interpreter import LiteRTModel


def measure_pipeline(model_path: Path, uploads: list[bytes], seconds: float) -> dict[str, float]:
    """Median µs per image for preprocess alone and for preprocess + inference (batch 1)."""
    model = LiteRTModel.from_file(model_path)
    model.run(np.zeros((1, 28, 28), np.float32))
    preprocess_us: list[float] = []
    total_us: list[float] = []
    began = time.perf_counter()
    index = 0
    while time.perf_counter() - began < seconds or index < len(uploads):
        upload = uploads[index % len(uploads)]
        index += 1
        start = time.perf_counter()
        pixels = preprocess_image(upload)
        middle = time.perf_counter()
        model.run(pixels[np.newaxis])
        end = time.perf_counter()
        preprocess_us.append((middle - start) * 1e6)
        total_us.append((end - start) * 1e6)
    total = statistics.median(total_us)
    return {
        "images": index,
        "preprocess_us": round(statistics.median(preprocess_us), 1),
        "total_us": round(total, 1),
        "images_per_s": round(1e6 / total, 1),
    }
