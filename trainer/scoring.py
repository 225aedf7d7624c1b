"""Calibrate the fitted classifier, then score it and every `.tflite` export both ways.

The temperature is fitted on the validation split only. Each artifact is scored on the
test digits and the held-out non-digits before and after the temperature is folded in
(the uncalibrated exports are scored, never written), and `format_evaluation` turns the
scores into the report that trainer/publish.py prints and writes as `evaluation.txt`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from service.model_card import (
    DEFAULT_NOT_A_DIGIT_THRESHOLD,
    NUM_CLASSES,
    CalibrationEffect,
    ClassReport,
    NotADigitQuality,
    ProbabilityQuality,
)
from trainer.calibrate import (
    ECE_BINS,
    fit_temperature,
    fold_temperature,
    logits_of,
    negative_log_likelihood,
    normalized,
    probability_quality,
    softmax,
)
from trainer.data import MnistData
from trainer.evaluate import (
    confusion_matrix,
    format_confusion_matrix,
    format_report,
    per_class_report,
)
from trainer.export import TfliteVariant
from trainer.negatives import HELD_OUT_DESCRIPTION, KINDS, held_out
from trainer.not_a_digit import format_quality
from trainer.not_a_digit import measure as measure_not_a_digit
from trainer.variants import ExportedVariant, export_variants

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class EvaluationSets:
    """What every artifact is scored on: the test digits and the held-out non-digits."""

    images: np.ndarray  # the test digits, as model input
    labels: np.ndarray
    negatives: np.ndarray  # float32 (M, 28, 28, 1)
    negative_kinds: np.ndarray  # each negative's index into `KINDS`


@dataclass(frozen=True)
class TemperatureFit:
    """The temperature fitted on the validation split, and the split's NLL before and after."""

    temperature: float
    fitted_count: int  # validation images: digits and generated non-digits
    nll_before: float
    nll_after: float


@dataclass(frozen=True)
class Scores:
    """The Keras model and every `.tflite` variant, scored before and after calibration."""

    classifier: keras.Model  # the fitted classifier itself, its temperature now folded in
    temperature: float
    variants: list[TfliteVariant]
    keras_before: ProbabilityQuality
    keras_after: ProbabilityQuality
    keras_probabilities: np.ndarray  # (N, 10), calibrated, on the test digits
    uncalibrated: dict[str, ExportedVariant]  # scored only, never written
    calibrated: dict[str, ExportedVariant]  # the artifacts to publish, timed


@dataclass(frozen=True)
class Evaluation:
    """The calibrated artifacts' test-split quality, as the report and the card record it."""

    accuracy: float  # the Keras model's
    loss: float  # the Keras model's NLL
    matrix: np.ndarray  # the Keras model's confusion matrix
    report: dict[str, ClassReport]
    effects: dict[str, CalibrationEffect]  # "keras", then each variant
    not_a_digit: dict[str, NotADigitQuality]  # per variant


def evaluation_sets(data: MnistData, x_test: np.ndarray) -> EvaluationSets:
    """The test digits (`x_test`, their labels from `data`) and the held-out non-digits."""
    negatives, kinds = held_out(data.test_images)
    return EvaluationSets(
        images=x_test,
        labels=data.test_labels,
        negatives=negatives[..., np.newaxis],
        negative_kinds=kinds,
    )


def calibrate(
    classifier: keras.Model, x_validation: np.ndarray, validation_labels: np.ndarray
) -> TemperatureFit:
    """The temperature that minimizes the validation split's NLL; logged with its effect."""
    # The validation split, because the fit never trained on it.
    logits = logits_of(classifier, x_validation)
    temperature = fit_temperature(logits, validation_labels)
    fit = TemperatureFit(
        temperature=temperature,
        fitted_count=len(validation_labels),
        nll_before=negative_log_likelihood(softmax(logits), validation_labels),
        nll_after=negative_log_likelihood(softmax(logits, temperature), validation_labels),
    )
    log.info(
        "temperature %.4f: validation NLL %.4f → %.4f", temperature, fit.nll_before, fit.nll_after
    )
    return fit


def score_both_ways(
    classifier: keras.Model,
    variants: list[TfliteVariant],
    temperature: float,
    calibration_images: np.ndarray,
    sets: EvaluationSets,
    seed: int,
) -> Scores:
    """The classifier and every exported variant, scored before and after calibration.

    Folds `temperature` into `classifier` in place: from then on it is the calibrated
    one, the one `Scores.classifier` names and trainer/publish.py saves.
    """

    def exported(calibrated: bool) -> dict[str, ExportedVariant]:
        # Only the calibrated exports are published, so only they are timed.
        return export_variants(
            classifier,
            variants,
            calibration_images=calibration_images,
            test_images=sets.images,
            test_labels=sets.labels,
            negatives=sets.negatives,
            seed=seed,
            measure_speed=calibrated,
        )

    # Digit quality is measured on the digits' probabilities (the first ten outputs), as
    # `/v1` returns them: not renormalized, so a digit the model doubts scores low.
    keras_before = probability_quality(
        softmax(logits_of(classifier, sets.images))[:, :NUM_CLASSES], sets.labels
    )
    uncalibrated = exported(False)
    fold_temperature(classifier, temperature)
    outputs = normalized(classifier.predict(sets.images, batch_size=512, verbose=0))
    probabilities = outputs[:, :NUM_CLASSES]
    keras_after = probability_quality(probabilities, sets.labels)
    return Scores(
        classifier=classifier,
        temperature=temperature,
        variants=variants,
        keras_before=keras_before,
        keras_after=keras_after,
        keras_probabilities=probabilities,
        uncalibrated=uncalibrated,
        calibrated=exported(True),
    )


def evaluate(scores: Scores, sets: EvaluationSets) -> Evaluation:
    """Per-class report, calibration effects and not-a-digit quality of every artifact."""
    labels = sets.labels
    not_a_digit = {
        key: measure_not_a_digit(
            exported.outputs,
            exported.negative_outputs,
            sets.negative_kinds,
            KINDS,
            DEFAULT_NOT_A_DIGIT_THRESHOLD,
        )
        for key, exported in scores.calibrated.items()
    }
    matrix = confusion_matrix(labels, scores.keras_probabilities.argmax(axis=1))
    effects = {"keras": CalibrationEffect(before=scores.keras_before, after=scores.keras_after)}
    for key, exported in scores.calibrated.items():
        effects[key] = CalibrationEffect(
            before=probability_quality(scores.uncalibrated[key].probabilities, labels),
            after=probability_quality(exported.probabilities, labels),
        )
    return Evaluation(
        accuracy=scores.keras_after.accuracy,
        loss=scores.keras_after.nll,
        matrix=matrix,
        report=per_class_report(matrix),
        effects=effects,
        not_a_digit=not_a_digit,
    )


def format_evaluation(
    evaluation: Evaluation, calibration: TemperatureFit, sets: EvaluationSets
) -> str:
    """The report printed at the end of a run and written as `evaluation.txt`."""
    accuracy = evaluation.accuracy
    lines = [
        _quality_line(f"{key} {when}", quality)
        for key, effect in evaluation.effects.items()
        for when, quality in (("before", effect.before), ("after", effect.after))
    ]
    return (
        f"Keras test accuracy {accuracy:.4f}, loss {evaluation.loss:.4f} (calibrated)\n\n"
        f"Temperature scaling: T = {calibration.temperature:.4f}, fitted on "
        f"{calibration.fitted_count} validation images "
        f"(NLL {calibration.nll_before:.4f} → {calibration.nll_after:.4f}); "
        f"test split, ECE in {ECE_BINS} equal-width bins:\n" + "\n".join(lines) + "\n\n"
        f"{format_report(evaluation.report, accuracy)}\n\n"
        f"{format_confusion_matrix(evaluation.matrix)}\n\n"
        f"Not a digit: {len(sets.labels)} test digits against {len(sets.negatives)} held-out "
        f"non-digits ({HELD_OUT_DESCRIPTION}):\n"
        + "\n".join(format_quality(key, quality) for key, quality in evaluation.not_a_digit.items())
        + "\n"
    )


def _quality_line(name: str, quality: ProbabilityQuality) -> str:
    wrong = quality.mean_confidence_wrong
    return (
        f"{name:<22} accuracy {quality.accuracy:.4f}  NLL {quality.nll:.4f}  "
        f"ECE {quality.ece:.2%}  confidence: mean {quality.mean_confidence:.4f}, "
        f"correct {quality.mean_confidence_correct or 0:.4f}, "
        f"wrong {'n/a' if wrong is None else f'{wrong:.4f}'}"
    )
