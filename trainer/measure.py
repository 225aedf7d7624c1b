"""Accuracy and speed of an exported `.tflite` in the LiteRT interpreter the service uses."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from service.interpreter import LiteRTModel
from service.model_card import LatencyMeasurement


def tflite_accuracy(model: LiteRTModel, images: np.ndarray, labels: np.ndarray) -> float:
    """`images` float32 (N, 28, 28, 1) in [0, 1]."""
    predicted = model.predict(images).argmax(axis=1)
    return float((predicted == labels).mean())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_seconds(model: LiteRTModel, batch: np.ndarray, repeats: int) -> float:
    model.run(batch)  # warm-up: allocation and first-touch costs are not steady state
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(batch)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def measure_latency(
    model_content: bytes, images: np.ndarray, repeats: int = 300
) -> LatencyMeasurement:
    """Median single-image time and batch-256 throughput on one interpreter thread.

    Each batch size gets its own interpreter so neither pays for re-allocation.
    Timings include quantizing the input and reading the output back, as serving does.
    """
    single = _median_seconds(LiteRTModel(model_content, num_threads=1), images[:1], repeats)
    batch = images[:256]
    batch_seconds = _median_seconds(
        LiteRTModel(model_content, num_threads=1), batch, max(5, repeats // 30)
    )
    return LatencyMeasurement(
        single_image_us=round(single * 1e6, 1),
        batch256_images_per_s=round(len(batch) / batch_seconds, 0),
        num_threads=1,
        machine=cpu_name(),
    )
