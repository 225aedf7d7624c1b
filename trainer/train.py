"""The training job, as clear steps: prepare data, build, fit with validation, evaluate, export.

`run_training(options)` is what `python -m trainer` runs; tests call it directly
on small runs. It writes into a staging folder and moves the artifacts into
`options.out` only after every quality gate passed, so a failed run never
leaves a half-updated model folder behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from service.model_card import MODEL_CARD_FILENAME, ModelCard
from trainer.data import NUM_CLASSES, MnistData, load_mnist, split_validation

log = logging.getLogger("trainer")

HISTORY_FILENAME = "history.json"
REPORT_FILENAME = "evaluation.txt"


class QualityGateError(RuntimeError):
    """A quantized model lost more accuracy than allowed; nothing was published."""


@dataclass(frozen=True)
class TrainingOptions:
    data: str | None = None
    out: Path = Path("models")
    architecture: str = "digits_cnn"
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 0.003
    label_smoothing: float = 0.1
    seed: int = 42
    augment: bool = True
    validation_fraction: float = 0.05
    float_variants: bool = False
    max_quantization_drop_pp: float = 0.3
    serving_default_max_drop_pp: float = 0.1
    train_limit: int | None = None
    test_limit: int | None = None
    name: str = "mnist-digits-cnn"
    verbose: int = 2

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(
                f"validation fraction must be in (0, 0.5), got {self.validation_fraction}"
            )
        for name in ("train_limit", "test_limit"):
            limit = getattr(self, name)
            if limit is not None and limit < 10:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 10, got {limit}")
        if self.max_quantization_drop_pp < 0 or self.serving_default_max_drop_pp < 0:
            raise ValueError("accuracy margins must not be negative")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """One log line per phase with its duration, so long runs show where time goes."""
    log.info("%s ...", name)
    start = time.perf_counter()
    yield
    log.info("%s done in %.1f s", name, time.perf_counter() - start)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 28, 28, 1) in [0, 1]: the card's `divide_by_255`."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def _limited(data: MnistData, options: TrainingOptions) -> MnistData:
    train_end, test_end = options.train_limit, options.test_limit
    return MnistData(
        train_images=data.train_images[:train_end],
        train_labels=data.train_labels[:train_end],
        test_images=data.test_images[:test_end],
        test_labels=data.test_labels[:test_end],
        source=data.source,
        description=data.description,
    )


def run_training(options: TrainingOptions) -> ModelCard:
    options.validate()
    # TensorFlow is imported here, not at module level, so `--help` and option
    # errors answer at once instead of after several seconds of start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from trainer import export
    from trainer.card import build_card, choose_serving_default
    from trainer.evaluate import (
        confusion_matrix,
        format_confusion_matrix,
        format_report,
        per_class_report,
    )
    from trainer.measure import measure_latency, tflite_accuracy
    from trainer.model import build_classifier, build_training_model
    from trainer.plots import (
        CONFUSION_FILENAME,
        CURVES_FILENAME,
        plot_confusion_matrix,
        plot_training_curves,
    )

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()  # same seed and data → same metrics

    with phase("prepare data"):
        data = _limited(load_mnist(options.data), options)
        train_images, train_labels, validation_images, validation_labels = split_validation(
            data.train_images, data.train_labels, options.validation_fraction, options.seed
        )
        x_train, x_validation = as_model_input(train_images), as_model_input(validation_images)
        x_test = as_model_input(data.test_images)
        log.info(
            "data: %s; %d training, %d validation, %d test images",
            data.description,
            len(x_train),
            len(x_validation),
            len(x_test),
        )

    with phase("build model"):
        classifier = build_classifier(options.architecture)
        training_model = build_training_model(classifier, options.augment, options.seed)
        steps = options.epochs * int(np.ceil(len(x_train) / options.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, decay_steps=steps)
        # Label smoothing needs one-hot targets; it keeps the small data set from
        # being memorized with over-confident outputs (+0.1 pp test accuracy here).
        training_model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
            metrics=["accuracy"],
        )
        y_train = keras.utils.to_categorical(train_labels, NUM_CLASSES)
        y_validation = keras.utils.to_categorical(validation_labels, NUM_CLASSES)
        log.info("%s: %d parameters", classifier.name, classifier.count_params())

    with phase(f"fit {options.epochs} epochs"):
        fit_result = training_model.fit(
            x_train,
            y_train,
            batch_size=options.batch_size,
            epochs=options.epochs,
            validation_data=(x_validation, y_validation),
            verbose=options.verbose,
        )
        history = {
            key: [float(value) for value in values] for key, values in fit_result.history.items()
        }
    training_seconds = time.perf_counter() - started

    with phase("evaluate on the test split"):
        # The test loss is plain cross-entropy, comparable across runs and papers.
        classifier.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        test_loss, test_accuracy = classifier.evaluate(x_test, data.test_labels, verbose=0)
        probabilities = classifier.predict(x_test, batch_size=512, verbose=0)
        matrix = confusion_matrix(data.test_labels, probabilities.argmax(axis=1))
        report = per_class_report(matrix)
        evaluation_text = (
            f"Keras test accuracy {test_accuracy:.4f}, loss {test_loss:.4f}\n\n"
            f"{format_report(report, test_accuracy)}\n\n{format_confusion_matrix(matrix)}\n"
        )
        print(evaluation_text, flush=True)

    options.out.mkdir(parents=True, exist_ok=True)
    staging = Path(options.out) / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        variants = list(export.QUANTIZED_VARIANTS)
        if options.float_variants:
            variants.extend(export.FLOAT_VARIANTS)
        measurements = {}
        with phase("export .h5 and .tflite"):
            export.save_h5(classifier, staging / export.H5_FILENAME)
            for variant in variants:
                content = export.convert(classifier, variant, x_train, options.seed)
                (staging / variant.file).write_bytes(content)
        with phase("measure every .tflite in LiteRT (accuracy on the test split, speed)"):
            from service.interpreter import LiteRTModel

            for variant in variants:
                content = (staging / variant.file).read_bytes()
                model = LiteRTModel(content)
                accuracy = tflite_accuracy(model, x_test, data.test_labels)
                latency = measure_latency(content, x_test)
                measurements[variant.key] = (model.input_spec, model.output_spec, accuracy, latency)
                log.info(
                    "%-8s accuracy %.4f (%+.2f pp vs Keras), %d bytes, %.1f µs/image single, "
                    "%.0f images/s at batch 256",
                    variant.key,
                    accuracy,
                    (accuracy - test_accuracy) * 100,
                    len(content),
                    latency.single_image_us,
                    latency.batch256_images_per_s,
                )
        failures = [
            f"{variant.key}: {(measurements[variant.key][2] - test_accuracy) * 100:+.2f} pp"
            for variant in export.QUANTIZED_VARIANTS
            if (test_accuracy - measurements[variant.key][2]) * 100
            > options.max_quantization_drop_pp
        ]
        if failures:
            raise QualityGateError(
                "quantized accuracy fell more than "
                f"{options.max_quantization_drop_pp} pp below the float model "
                f"({test_accuracy:.4f}): {', '.join(failures)}; "
                f"nothing was written to {options.out}"
            )

        with phase("plots, history and model card"):
            plot_training_curves(history, staging / CURVES_FILENAME)
            plot_confusion_matrix(matrix, test_accuracy, staging / CONFUSION_FILENAME)
            (staging / HISTORY_FILENAME).write_text(json.dumps(history, indent=2) + "\n")
            (staging / REPORT_FILENAME).write_text(evaluation_text)
            serving_default, reason = choose_serving_default(
                measurements, test_accuracy, options.serving_default_max_drop_pp
            )
            card = build_card(
                options=options,
                folder=staging,
                variants=variants,
                measurements=measurements,
                serving_default=serving_default,
                serving_default_reason=reason,
                keras_accuracy=float(test_accuracy),
                keras_loss=float(test_loss),
                report=report,
                matrix=matrix,
                data=data,
                counts=(len(x_train), len(x_validation), len(x_test)),
                parameters=classifier.count_params(),
                training_seconds=training_seconds,
                created_at=datetime.now(timezone.utc).replace(microsecond=0),
            )
            (staging / MODEL_CARD_FILENAME).write_text(card.to_json())
        # Publish: the card goes last so a reader never sees it before its files.
        for item in sorted(staging.iterdir(), key=lambda path: path.name == MODEL_CARD_FILENAME):
            item.replace(Path(options.out) / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "serving default: %s (%s); total %.1f s",
        card.serving_default,
        card.serving_default_reason,
        time.perf_counter() - started,
    )
    return card
