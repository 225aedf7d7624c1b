"""Accuracy and speed of an exported `.tflite` in the LiteRT interpreter the service uses."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from service.model_card import LatencyMeasurement
from service.runtime.interpreter import LiteRTModel

# The flags that decide how fast quantized kernels run: AVX2/FMA for the float and
# dynamic-range paths, AVX-512 and the VNNI dot-product instructions for full int8.
RELEVANT_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")


def tflite_probabilities(model: LiteRTModel, images: np.ndarray) -> np.ndarray:
    """`images` float32 (N, 28, 28, 1) in [0, 1] → probabilities as the service returns them."""
    from trainer.calibrate import normalized

    return normalized(model.predict(images))


def tflite_accuracy(model: LiteRTModel, images: np.ndarray, labels: np.ndarray) -> float:
    """`images` float32 (N, 28, 28, 1) in [0, 1]."""
    predicted = model.predict(images).argmax(axis=1)
    return float((predicted == labels).mean())


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> list[str] | None:
    """Which of `RELEVANT_CPU_FLAGS` this CPU has; None where /proc/cpuinfo is unavailable."""
    flags = _cpuinfo_field("flags")
    if flags is None:
        return None
    present = set(flags.split())
    return [flag for flag in RELEVANT_CPU_FLAGS if flag in present]


def cpu_name() -> str:
    """Model name and relevant flags, e.g. "AMD EPYC (avx2, fma; no avx512f, ...)"."""
    name = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    flags = cpu_flags()
    if flags is None:
        return name
    missing = [flag for flag in RELEVANT_CPU_FLAGS if flag not in flags]
    has = ", ".join(flags) or "none of " + "/".join(RELEVANT_CPU_FLAGS)
    return f"{name} ({has}{'; no ' + ', '.join(missing) if missing else ''})"


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
        cpu_flags=cpu_flags(),
    )
