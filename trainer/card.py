"""Assemble the model card from what the run measured, and pick the serving default."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from service.model_card import (
    Artifact,
    Calibration,
    CalibrationEffect,
    ClassReport,
    DataProvenance,
    LatencyMeasurement,
    Metrics,
    ModelCard,
    NotADigit,
    NotADigitQuality,
    TensorSpec,
    TrainingConfig,
    sha256_of_file,
)
from trainer.data import MnistData
from trainer.export import H5_FILENAME, TfliteVariant

if TYPE_CHECKING:
    from trainer.options import TrainingOptions

Measurement = tuple[TensorSpec, TensorSpec, float, LatencyMeasurement]


def choose_serving_default(
    measurements: dict[str, Measurement], keras_accuracy: float, max_drop_pp: float
) -> tuple[str, str]:
    """The fastest quantized variant that loses at most `max_drop_pp` of accuracy.

    Speed is the geometric mean of single-image and batch-256 speed relative to
    the best of each, so neither figure alone decides. If no variant is within
    the margin, the most accurate one serves, and the reason says so.
    """
    quantized = {key: value for key, value in measurements.items() if key in ("int8", "dynamic")}
    eligible = {
        key: value
        for key, value in quantized.items()
        if (keras_accuracy - value[2]) * 100 <= max_drop_pp + 1e-9
    }
    if not eligible:
        key = max(quantized, key=lambda name: quantized[name][2])
        return key, (
            f"no quantized variant is within {max_drop_pp} pp of the float model; "
            f"{key} is the most accurate"
        )
    best_single = min(value[3].single_image_us for value in eligible.values())
    best_batch = max(value[3].batch256_images_per_s for value in eligible.values())

    def speed(key: str) -> float:
        latency = eligible[key][3]
        return float(
            np.sqrt(
                (best_single / latency.single_image_us)
                * (latency.batch256_images_per_s / best_batch)
            )
        )

    chosen = max(eligible, key=speed)
    figures = "; ".join(
        f"{key}: {value[3].single_image_us:.0f} µs single, "
        f"{value[3].batch256_images_per_s:.0f} images/s at batch 256, "
        f"{(value[2] - keras_accuracy) * 100:+.2f} pp"
        for key, value in sorted(quantized.items())
    )
    machine = eligible[chosen][3].machine
    return chosen, (
        f"fastest quantized variant within {max_drop_pp} pp of the float model's accuracy "
        f"on this machine, {machine} ({figures})"
    )


def build_card(
    *,
    options: TrainingOptions,
    folder: Path,
    variants: list[TfliteVariant],
    measurements: dict[str, Measurement],
    effects: dict[str, CalibrationEffect],
    calibration: Calibration,
    serving_default: str,
    serving_default_reason: str,
    not_a_digit: tuple[NotADigit, dict[str, NotADigitQuality]] | None = None,
    keras_accuracy: float,
    keras_loss: float,
    report: dict[str, ClassReport],
    matrix: np.ndarray,
    data: MnistData,
    counts: tuple[int, int, int],
    source_train_count: int,
    parameters: int,
    training_seconds: float,
    teachers_seconds: float | None = None,
    created_at: datetime,
) -> ModelCard:
    h5_path = folder / H5_FILENAME
    artifacts = {
        "keras": Artifact(
            file=H5_FILENAME,
            format="keras_h5",
            quantization="none",
            sha256=sha256_of_file(h5_path),
            size_bytes=h5_path.stat().st_size,
            test_accuracy=round(keras_accuracy, 6),
            accuracy_delta_pp=0.0,
            calibration=effects.get("keras"),
        )
    }
    for variant in variants:
        input_spec, output_spec, accuracy, latency = measurements[variant.key]
        path = folder / variant.file
        artifacts[variant.key] = Artifact(
            file=variant.file,
            format="tflite",
            quantization=variant.quantization,
            sha256=sha256_of_file(path),
            size_bytes=path.stat().st_size,
            input=input_spec,
            output=output_spec,
            test_accuracy=round(accuracy, 6),
            accuracy_delta_pp=round((accuracy - keras_accuracy) * 100, 3),
            latency=latency,
            calibration=effects.get(variant.key),
            not_a_digit=None if not_a_digit is None else not_a_digit[1].get(variant.key),
        )
    train_count, validation_count, test_count = counts
    return ModelCard(
        name=options.name,
        version=f"{created_at:%Y.%m.%d}-{artifacts[serving_default].sha256[:8]}",
        created_at=created_at,
        labels=[str(digit) for digit in range(10)],
        artifacts=artifacts,
        serving_default=serving_default,
        serving_default_reason=serving_default_reason,
        training=TrainingConfig(
            architecture=options.architecture,
            epochs=options.epochs,
            batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            label_smoothing=options.label_smoothing,
            seed=options.seed,
            augmentation=options.augment,
            validation_fraction=options.validation_fraction,
            parameters=parameters,
            duration_s=round(training_seconds, 1),
            tensorflow_version=tf.__version__,
            keras_version=keras.__version__,
            negatives=options.negatives,
            teachers=options.teachers,
            teacher_epochs=(options.teacher_epochs or options.epochs) if options.teachers else None,
            distill_weight=options.distill_weight if options.teachers else None,
            distill_temperature=options.distill_temperature if options.teachers else None,
            teachers_duration_s=None if teachers_seconds is None else round(teachers_seconds, 1),
        ),
        data=DataProvenance(
            source=data.source,
            description=data.description,
            train_count=train_count,
            validation_count=validation_count,
            test_count=test_count,
            source_train_count=source_train_count,
        ),
        metrics=Metrics(
            keras_test_accuracy=round(keras_accuracy, 6),
            keras_test_loss=round(keras_loss, 6),
            per_class=report,
            confusion_matrix=matrix.tolist(),
        ),
        calibration=calibration,
        not_a_digit=None if not_a_digit is None else not_a_digit[0],
    )
