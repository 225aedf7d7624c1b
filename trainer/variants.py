"""Convert the classifier to each `.tflite` variant and measure it in LiteRT, as serving runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from service.model_card import LatencyMeasurement, TensorSpec
from service.runtime.interpreter import LiteRTModel
from trainer.export import TfliteVariant, convert
from trainer.measure import measure_latency, tflite_probabilities

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class ExportedVariant:
    variant: TfliteVariant
    content: bytes
    input_spec: TensorSpec
    output_spec: TensorSpec
    probabilities: np.ndarray  # on the test split, normalized as the service returns them
    accuracy: float
    latency: LatencyMeasurement | None  # None when speed was not measured


def export_variants(
    classifier: keras.Model,
    variants: list[TfliteVariant],
    calibration_images: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    seed: int,
    measure_speed: bool,
) -> dict[str, ExportedVariant]:
    """Every variant converted and scored on the test split (and timed if `measure_speed`)."""
    results = {}
    for variant in variants:
        content = convert(classifier, variant, calibration_images, seed)
        model = LiteRTModel(content)
        probabilities = tflite_probabilities(model, test_images)
        accuracy = float((probabilities.argmax(axis=1) == test_labels).mean())
        latency = measure_latency(content, test_images) if measure_speed else None
        results[variant.key] = ExportedVariant(
            variant=variant,
            content=content,
            input_spec=model.input_spec,
            output_spec=model.output_spec,
            probabilities=probabilities,
            accuracy=accuracy,
            latency=latency,
        )
        log.info(
            "%-8s accuracy %.4f, %d bytes%s",
            variant.key,
            accuracy,
            len(content),
            ""
            if latency is None
            else f", {latency.single_image_us:.1f} µs/image single, "
            f"{latency.batch256_images_per_s:.0f} images/s at batch 256",
        )
    return results
