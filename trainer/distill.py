"""Fitting one network, and the teacher ensemble a student can learn from.

Every network is fitted on logits (the classifier's final layer without its softmax,
trainer/model.py: `build_logits_model`), so one loss serves both recipes:

- plain: cross-entropy with the labels;
- distilled (Hinton et al., 2015): `(1 − w) · CE(labels) + w · T² · CE(teachers at T)`,
  where the teachers' targets are the softmax, at temperature T, of their mean logits on
  each training image. The targets are computed once, on the unaugmented images, so a
  student epoch costs what a plain one does; the augmentation's small shifts, turns and
  zooms do not change which digit an image shows.

Teachers are saved as they finish (`<out>/.teachers/`, keyed by everything that shapes
them), so a run that stopped resumes without training them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import keras
import numpy as np

from trainer.calibrate import logits_of
from trainer.model import NUM_OUTPUTS, build_classifier, build_logits_model
from trainer.options import TrainingOptions

if TYPE_CHECKING:
    from trainer.prepared import PreparedData

log = logging.getLogger("trainer")

TEACHERS_FOLDER = ".teachers"


@dataclass(frozen=True)
class FitResult:
    classifier: keras.Model  # softmax outputs, as exported
    history: dict[str, list[float]]
    seconds: float


def _loss(options: TrainingOptions, distilled: bool):  # type: ignore[no-untyped-def]
    smoothing, weight, temperature = (
        options.label_smoothing,
        options.distill_weight,
        options.distill_temperature,
    )

    def loss(targets, logits):  # type: ignore[no-untyped-def]
        hard = keras.losses.categorical_crossentropy(
            targets[:, :NUM_OUTPUTS], logits, from_logits=True, label_smoothing=smoothing
        )
        if not distilled:
            return hard
        soft = keras.losses.categorical_crossentropy(
            targets[:, NUM_OUTPUTS:], logits / temperature, from_logits=True
        )
        return (1 - weight) * hard + weight * temperature**2 * soft

    return loss


def accuracy(targets, logits):  # type: ignore[no-untyped-def]
    truth = keras.ops.argmax(targets[:, :NUM_OUTPUTS], axis=-1)
    return keras.ops.cast(keras.ops.equal(truth, keras.ops.argmax(logits, axis=-1)), "float32")


def _targets(labels: np.ndarray, soft: np.ndarray | None) -> np.ndarray:
    hard = keras.utils.to_categorical(labels, NUM_OUTPUTS).astype(np.float32)
    return hard if soft is None else np.concatenate([hard, soft], axis=1)


def fit_network(
    options: TrainingOptions,
    prepared: PreparedData,
    seed: int,
    teacher_train_logits: np.ndarray | None = None,
) -> FitResult:
    """One network fitted from `seed`; distilled when the teachers' logits are given."""
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    classifier = build_classifier(options.architecture)
    training_model = build_logits_model(classifier, options.augment, seed)
    steps = options.epochs * int(np.ceil(len(prepared.x_train) / options.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, decay_steps=steps)
    distilled = teacher_train_logits is not None
    soft = None
    if teacher_train_logits is not None:
        scaled = teacher_train_logits / options.distill_temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        soft = np.exp(scaled)
        soft = (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)
    training_model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=_loss(options, distilled),
        metrics=[accuracy],
    )
    log.info(
        "%s (seed %d%s): %d parameters",
        classifier.name,
        seed,
        ", distilled" if distilled else "",
        classifier.count_params(),
    )
    validation_targets = _targets(prepared.validation_labels, None)
    if distilled:  # the validation loss is then on the labels only: no teacher saw them
        validation_targets = np.concatenate([validation_targets, validation_targets], axis=1)
    result = training_model.fit(
        prepared.x_train,
        _targets(prepared.train_labels, soft),
        batch_size=options.batch_size,
        epochs=options.epochs,
        validation_data=(prepared.x_validation, validation_targets),
        verbose=options.verbose,
    )
    history = {key: [float(value) for value in values] for key, values in result.history.items()}
    return FitResult(classifier, history, time.perf_counter() - started)


def _fingerprint(options: TrainingOptions, prepared: PreparedData) -> str:
    """What shapes a teacher: the options that reach its fit, and the data it saw."""
    ignored = {"out", "float_variants", "verbose", "teachers", "teacher_epochs", "test_limit"}
    shaping = {
        key: value
        for key, value in asdict(options).items()
        if key not in ignored | {"data"} and not key.startswith(("distill_", "max_", "serving_"))
    }
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode())
    for array in (prepared.x_train, prepared.train_labels, prepared.x_validation):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Teachers:
    train_logits: np.ndarray  # float32 (N, 11): the teachers' mean logits on x_train
    seconds: float  # their fit times, added up (as recorded when each was trained)


def teacher_logits(options: TrainingOptions, prepared: PreparedData) -> Teachers:
    """The mean logits of `options.teachers` networks (seeds seed+1, seed+2, ...) on every
    training image; each teacher is loaded from `<out>/.teachers/` when it was trained
    before, with its recorded fit time."""
    folder = options.out / TEACHERS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    options = replace(options, epochs=options.teacher_epochs or options.epochs)
    fingerprint = _fingerprint(options, prepared)
    total = np.zeros((len(prepared.x_train), NUM_OUTPUTS), dtype=np.float64)
    seconds = 0.0
    for index in range(options.teachers):
        seed = options.seed + 1 + index
        path = folder / f"teacher-{fingerprint}-seed{seed}.weights.h5"
        record = path.with_suffix(".json")
        if path.is_file() and record.is_file():
            classifier = build_classifier(options.architecture)
            classifier.load_weights(path)
            fit_seconds = float(json.loads(record.read_text())["fit_seconds"])
            log.info("teacher %d (seed %d): loaded %s", index + 1, seed, path)
        else:
            fitted = fit_network(options, prepared, seed)
            classifier, fit_seconds = fitted.classifier, fitted.seconds
            classifier.save_weights(path)
            record.write_text(json.dumps({"fit_seconds": round(fit_seconds, 1)}) + "\n")
            log.info("teacher %d (seed %d): fitted in %.1f s", index + 1, seed, fit_seconds)
        seconds += fit_seconds
        logits = logits_of(classifier, prepared.x_train)
        validation = logits_of(classifier, prepared.x_validation).argmax(axis=1)
        log.info(
            "teacher %d: validation accuracy %.4f",
            index + 1,
            float((validation == prepared.validation_labels).mean()),
        )
        total += logits
    return Teachers((total / options.teachers).astype(np.float32), seconds)
