"""Convert the classifier to each `.tflite` variant and measure it in LiteRT, as serving runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from service.model_card import NUM_CLASSES, LatencyMeasurement, TensorSpec
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
    outputs: np.ndarray  # (N, 11) on the test split, normalized as the service returns them
    negative_outputs: np.ndarray  # (M, 11) on the held-out non-digits
    accuracy: float
    latency: LatencyMeasurement | None  # None when speed was not measured

    @property
    def probabilities(self) -> np.ndarray:
        """The digits' probabilities (N, 10), as `/v1` returns them."""
        return self.outputs[:, :NUM_CLASSES]


def export_variants(
    classifier: keras.Model,
    variants: list[TfliteVariant],
    calibration_images: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    negatives: np.ndarray,
    seed: int,
    measure_speed: bool,
) -> dict[str, ExportedVariant]:
    """Every variant converted and scored on the test split and on the held-out non-digits
    (and timed if `measure_speed`). Accuracy is the digit's: the best of the ten digits."""
    results = {}
    for variant in variants:
        content = convert(classifier, variant, calibration_images, seed)
        model = LiteRTModel(content)
        outputs = tflite_probabilities(model, test_images)
        accuracy = float((outputs[:, :NUM_CLASSES].argmax(axis=1) == test_labels).mean())
        latency = measure_latency(content, test_images) if measure_speed else None
        results[variant.key] = ExportedVariant(
            variant=variant,
            content=content,
            input_spec=model.input_spec,
            output_spec=model.output_spec,
            outputs=outputs,
            negative_outputs=tflite_probabilities(model, negatives),
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
