"""The training job, as clear steps: prepare data, build, fit with validation, then publish.

`run_training(options)` is what `python -m trainer` runs; tests call it directly
on small runs. Calibration, evaluation and export are in `trainer.publish`, which
writes into a staging folder and moves the artifacts into `options.out` only
after every quality gate passed, so a failed run never leaves a half-updated
model folder behind.

The network learns eleven answers: the ten digits and "not a digit", from MNIST plus
generated non-digits (trainer/negatives.py: outlier exposure with an extra class). With
`--teachers N` it is first trained N times from other seeds, and the final network (the
student) learns from the ensemble's averaged answers as well as from the labels: one
network's cost at serving time, some of the ensemble's accuracy (trainer/distill.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from service.model_card import ModelCard
from trainer.data import MnistData, load_mnist, split_validation
from trainer.options import TrainingOptions
from trainer.prepared import PreparedData

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


def prepare(options: TrainingOptions) -> PreparedData:
    from trainer.model import NOT_A_DIGIT
    from trainer.negatives import generate

    source = load_mnist(options.data)
    data = _limited(source, options)
    train_images, train_labels, validation_images, validation_labels = split_validation(
        data.train_images, data.train_labels, options.validation_fraction, options.seed
    )
    # Negatives from their own seeds; `pairs` are made of the split's own digits, so no
    # validation digit is ever seen in training, not even beside another one.
    validation_count = round(options.negatives * options.validation_fraction)
    negatives, _ = generate(options.negatives, options.seed * 1000 + 1, train_images)
    held, _ = generate(validation_count, options.seed * 1000 + 2, validation_images)

    def joined(images: np.ndarray, labels: np.ndarray, extra: np.ndarray) -> tuple[np.ndarray, ...]:
        x = np.concatenate([as_model_input(images), extra[..., np.newaxis]])
        y = np.concatenate([labels.astype(np.int64), np.full(len(extra), NOT_A_DIGIT)])
        return x, y

    x_train, y_train = joined(train_images, train_labels, negatives)
    x_validation, y_validation = joined(validation_images, validation_labels, held)
    log.info(
        "data: %s; %d training digits + %d non-digits, %d + %d validation, %d test digits",
        data.description,
        len(train_labels),
        len(negatives),
        len(validation_labels),
        len(held),
        len(data.test_labels),
    )
    return PreparedData(
        data=data,
        source_train_count=len(source.train_labels),
        x_train=x_train,
        train_labels=y_train,
        x_validation=x_validation,
        validation_labels=y_validation,
        x_test=as_model_input(data.test_images),
        train_negatives=len(negatives),
        validation_negatives=len(held),
    )


def run_training(options: TrainingOptions) -> ModelCard:
    options.validate()
    # TensorFlow is imported here, not at module level, so `--help` and option
    # errors answer at once instead of after several seconds of start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from trainer.distill import fit_network, teacher_logits

    started = time.perf_counter()
    tf.config.experimental.enable_op_determinism()  # same seed and data → same metrics

    with phase("prepare data"):
        prepared = prepare(options)

    teachers, teachers_elapsed = None, 0.0
    if options.teachers:
        teachers_started = time.perf_counter()
        with phase(f"train {options.teachers} teachers"):
            teachers = teacher_logits(options, prepared)
        teachers_elapsed = time.perf_counter() - teachers_started  # recorded apart

    with phase(f"fit {options.epochs} epochs"):
        fitted = fit_network(
            options, prepared, options.seed, None if teachers is None else teachers.train_logits
        )
    training_seconds = time.perf_counter() - started - teachers_elapsed

    from trainer.publish import FittedModel, publish

    with phase("calibrate, evaluate, export and measure; publish"):
        card = publish(
            FittedModel(
                classifier=fitted.classifier,
                history=fitted.history,
                data=prepared.data,
                x_train=prepared.x_train,
                x_validation=prepared.x_validation,
                validation_labels=prepared.validation_labels,
                x_test=prepared.x_test,
                training_seconds=training_seconds,
                teachers_seconds=None if teachers is None else teachers.seconds,
                source_train_count=prepared.source_train_count,
                train_negatives=prepared.train_negatives,
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
