"""After the fit: calibrate, evaluate, export, gate, and publish the model folder.

Temperature scaling is fitted on the validation split only, then folded into the
final layer, so the `.h5` and every `.tflite` written here return calibrated
probabilities. Each artifact's test-split quality is measured both ways (an
uncalibrated export of the same weights is scored, never written) and recorded
in the card. Everything goes to a staging folder and is moved into place only
after every quality gate passed.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from service.model_card import (
    DEFAULT_NOT_A_DIGIT_THRESHOLD,
    MODEL_CARD_FILENAME,
    NUM_CLASSES,
    Calibration,
    CalibrationEffect,
    ModelCard,
    NotADigit,
    ProbabilityQuality,
)
from trainer import export
from trainer.calibrate import (
    ECE_BINS,
    fit_temperature,
    fold_temperature,
    logits_of,
    negative_log_likelihood,
    normalized,
    probability_quality,
    reliability_bins,
    softmax,
)
from trainer.card import Measurement, build_card, choose_serving_default
from trainer.data import MnistData
from trainer.evaluate import (
    confusion_matrix,
    format_confusion_matrix,
    format_report,
    per_class_report,
)
from trainer.negatives import HELD_OUT_DESCRIPTION, KINDS, held_out
from trainer.not_a_digit import format_quality
from trainer.not_a_digit import measure as measure_not_a_digit
from trainer.options import QualityGateError, TrainingOptions
from trainer.plots import (
    CONFUSION_FILENAME,
    CURVES_FILENAME,
    RELIABILITY_FILENAME,
    plot_confusion_matrix,
    plot_reliability_diagram,
    plot_training_curves,
)
from trainer.variants import export_variants

log = logging.getLogger("trainer")

HISTORY_FILENAME = "history.json"
REPORT_FILENAME = "evaluation.txt"


@dataclass(frozen=True)
class FittedModel:
    """What the fit produced, with the splits it saw."""

    classifier: keras.Model
    history: dict[str, list[float]]
    data: MnistData
    x_train: np.ndarray
    x_validation: np.ndarray
    validation_labels: np.ndarray
    x_test: np.ndarray
    training_seconds: float
    teachers_seconds: float | None
    source_train_count: int  # training images in the source, before any --train-limit
    train_negatives: int  # generated non-digits among x_train


def _quality_line(name: str, quality: ProbabilityQuality) -> str:
    wrong = quality.mean_confidence_wrong
    return (
        f"{name:<22} accuracy {quality.accuracy:.4f}  NLL {quality.nll:.4f}  "
        f"ECE {quality.ece:.2%}  confidence: mean {quality.mean_confidence:.4f}, "
        f"correct {quality.mean_confidence_correct or 0:.4f}, "
        f"wrong {'n/a' if wrong is None else f'{wrong:.4f}'}"
    )


def publish(fitted: FittedModel, options: TrainingOptions) -> ModelCard:
    classifier, labels = fitted.classifier, fitted.data.test_labels
    negatives, negative_kinds = held_out(fitted.data.test_images)
    negatives = negatives[..., np.newaxis]
    variants = list(export.QUANTIZED_VARIANTS)
    if options.float_variants:
        variants.extend(export.FLOAT_VARIANTS)

    # Calibration: fitted on the validation split, which the fit never trained on.
    validation_logits = logits_of(classifier, fitted.x_validation)
    temperature = fit_temperature(validation_logits, fitted.validation_labels)
    validation_labels = fitted.validation_labels
    nll_before = negative_log_likelihood(softmax(validation_logits), validation_labels)
    nll_after = negative_log_likelihood(softmax(validation_logits, temperature), validation_labels)
    log.info("temperature %.4f: validation NLL %.4f → %.4f", temperature, nll_before, nll_after)

    # Digit quality is measured on the digits' probabilities (the first ten outputs), as
    # `/v1` returns them: not renormalized, so a digit the model doubts scores low.
    float_before = probability_quality(
        softmax(logits_of(classifier, fitted.x_test))[:, :NUM_CLASSES], labels
    )
    test_sets = (fitted.x_train, fitted.x_test, labels, negatives, options.seed)
    uncalibrated = export_variants(classifier, variants, *test_sets, False)
    fold_temperature(classifier, temperature)
    outputs = normalized(classifier.predict(fitted.x_test, batch_size=512, verbose=0))
    probabilities = outputs[:, :NUM_CLASSES]
    float_after = probability_quality(probabilities, labels)
    calibrated = export_variants(classifier, variants, *test_sets, True)
    not_a_digit = {
        key: measure_not_a_digit(
            exported.outputs,
            exported.negative_outputs,
            negative_kinds,
            KINDS,
            DEFAULT_NOT_A_DIGIT_THRESHOLD,
        )
        for key, exported in calibrated.items()
    }

    test_accuracy, test_loss = float_after.accuracy, float_after.nll
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1))
    report = per_class_report(matrix)
    effects = {"keras": CalibrationEffect(before=float_before, after=float_after)}
    lines = [_quality_line("keras before", float_before), _quality_line("keras after", float_after)]
    for key, exported in calibrated.items():
        before = probability_quality(uncalibrated[key].probabilities, labels)
        after = probability_quality(exported.probabilities, labels)
        effects[key] = CalibrationEffect(before=before, after=after)
        lines += [_quality_line(f"{key} before", before), _quality_line(f"{key} after", after)]
    evaluation_text = (
        f"Keras test accuracy {test_accuracy:.4f}, loss {test_loss:.4f} (calibrated)\n\n"
        f"Temperature scaling: T = {temperature:.4f}, fitted on {len(validation_labels)} "
        f"validation images (NLL {nll_before:.4f} → {nll_after:.4f}); "
        f"test split, ECE in {ECE_BINS} equal-width bins:\n" + "\n".join(lines) + "\n\n"
        f"{format_report(report, test_accuracy)}\n\n{format_confusion_matrix(matrix)}\n\n"
        f"Not a digit: {len(labels)} test digits against {len(negatives)} held-out "
        f"non-digits ({HELD_OUT_DESCRIPTION}):\n"
        + "\n".join(format_quality(key, quality) for key, quality in not_a_digit.items())
        + "\n"
    )
    print(evaluation_text, flush=True)

    failures = [
        f"{variant.key}: {(calibrated[variant.key].accuracy - test_accuracy) * 100:+.2f} pp"
        for variant in export.QUANTIZED_VARIANTS
        if (test_accuracy - calibrated[variant.key].accuracy) * 100
        > options.max_quantization_drop_pp
    ]
    if failures:
        raise QualityGateError(
            "quantized accuracy fell more than "
            f"{options.max_quantization_drop_pp} pp below the float model "
            f"({test_accuracy:.4f}): {', '.join(failures)}; "
            f"nothing was written to {options.out}"
        )
    measurements: dict[str, Measurement] = {}
    for key, exported in calibrated.items():
        assert exported.latency is not None
        measurements[key] = (
            exported.input_spec,
            exported.output_spec,
            exported.accuracy,
            exported.latency,
        )
    serving_default, reason = choose_serving_default(
        measurements, test_accuracy, options.serving_default_max_drop_pp
    )

    options.out.mkdir(parents=True, exist_ok=True)
    staging = Path(options.out) / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        export.save_h5(classifier, staging / export.H5_FILENAME)
        for exported in calibrated.values():
            (staging / exported.variant.file).write_bytes(exported.content)
        plot_training_curves(fitted.history, staging / CURVES_FILENAME)
        plot_confusion_matrix(matrix, test_accuracy, staging / CONFUSION_FILENAME)
        served_before = uncalibrated[serving_default].probabilities
        served_after = calibrated[serving_default].probabilities
        plot_reliability_diagram(
            {
                "before calibration": (
                    reliability_bins(served_before, labels),
                    effects[serving_default].before.ece,
                ),
                f"after (T = {temperature:.2f})": (
                    reliability_bins(served_after, labels),
                    effects[serving_default].after.ece,
                ),
            },
            f"Reliability, served {serving_default} .tflite, test split",
            staging / RELIABILITY_FILENAME,
        )
        (staging / HISTORY_FILENAME).write_text(json.dumps(fitted.history, indent=2) + "\n")
        (staging / REPORT_FILENAME).write_text(evaluation_text)
        card = build_card(
            options=options,
            folder=staging,
            variants=variants,
            measurements=measurements,
            effects=effects,
            calibration=Calibration(
                temperature=round(temperature, 6),
                fitted_on="validation split (held out of training): digits and generated "
                "non-digits",
                fitted_count=len(validation_labels),
                ece_bins=ECE_BINS,
                validation_nll_before=round(nll_before, 6),
                validation_nll_after=round(nll_after, 6),
                reliability_diagram=RELIABILITY_FILENAME,
            ),
            serving_default=serving_default,
            serving_default_reason=reason,
            not_a_digit=(
                NotADigit(
                    output_index=NUM_CLASSES,
                    method="an eleventh class, trained on generated non-digits (outlier "
                    "exposure) and calibrated with the digits by the same temperature",
                    training_negatives=fitted.train_negatives,
                    kinds=list(KINDS),
                    held_out=HELD_OUT_DESCRIPTION,
                ),
                not_a_digit,
            ),
            keras_accuracy=test_accuracy,
            keras_loss=test_loss,
            report=report,
            matrix=matrix,
            data=fitted.data,
            # Digits only: the generated non-digits are counted in `training.negatives`.
            counts=(
                len(fitted.x_train) - fitted.train_negatives,
                int((validation_labels < NUM_CLASSES).sum()),
                len(fitted.x_test),
            ),
            source_train_count=fitted.source_train_count,
            parameters=classifier.count_params(),
            training_seconds=fitted.training_seconds,
            teachers_seconds=fitted.teachers_seconds,
            created_at=datetime.now(timezone.utc).replace(microsecond=0),
        )
        (staging / MODEL_CARD_FILENAME).write_text(card.to_json())
        # Publish: the card goes last so a reader never sees it before its files.
        for item in sorted(staging.iterdir(), key=lambda path: path.name == MODEL_CARD_FILENAME):
            item.replace(Path(options.out) / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return card
