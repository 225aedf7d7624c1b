"""The training job, as clear steps: prepare data, build, fit with validation, then publish.

`run_training(options)` is what `python -m trainer` runs; tests call it directly
on small runs. Calibration, evaluation and export are in `trainer.publish`, which
writes into a staging folder and moves the artifacts into `options.out` only
after every quality gate passed, so a failed run never leaves a half-updated
model folder behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from service.model_card import ModelCard
from trainer.data import NUM_CLASSES, MnistData, load_mnist, split_validation
from trainer.options import TrainingOptions

log = logging.getLogger("trainer")


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

    from trainer.model import build_classifier, build_training_model

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()  # same seed and data → same metrics

    with phase("prepare data"):
        source = load_mnist(options.data)
        data = _limited(source, options)
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

    from trainer.publish import FittedModel, publish

    with phase("calibrate, evaluate, export and measure; publish"):
        card = publish(
            FittedModel(
                classifier=classifier,
                history=history,
                data=data,
                x_train=x_train,
                x_validation=x_validation,
                validation_labels=validation_labels,
                x_test=x_test,
                training_seconds=training_seconds,
                source_train_count=len(source.train_labels),
            ),
            options,
        )
    log.info(
        "serving default: %s (%s); total %.1f s",
        card.serving_default,
        card.serving_default_reason,
        time.perf_counter() - started,
    )
    return card
