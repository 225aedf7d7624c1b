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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from service.model_card import (
    MODEL_CARD_FILENAME,
    NUM_CLASSES,
    Calibration,
    ModelCard,
    NotADigit,
)
from trainer import export
from trainer.calibrate import ECE_BINS, reliability_bins
from trainer.card import Measurement, build_card, choose_serving_default
from trainer.data import MnistData
from trainer.negatives import HELD_OUT_DESCRIPTION, KINDS
from trainer.options import QualityGateError, TrainingOptions
from trainer.plots import (
    CONFUSION_FILENAME,
    CURVES_FILENAME,
    RELIABILITY_FILENAME,
    plot_confusion_matrix,
    plot_reliability_diagram,
    plot_training_curves,
)
from trainer.scoring import (
    Evaluation,
    Scores,
    TemperatureFit,
    calibrate,
    evaluate,
    evaluation_sets,
    format_evaluation,
    score_both_ways,
)
from trainer.variants import ExportedVariant

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


@dataclass(frozen=True)
class ServingChoice:
    """The variant served by default, why, and the measurements it was chosen from."""

    key: str
    reason: str
    measurements: dict[str, Measurement]


def publish(fitted: FittedModel, options: TrainingOptions) -> ModelCard:
    """Calibrate, score, gate and publish the fitted classifier into `options.out`.

    Raises `QualityGateError`, before anything is written, when a quantized variant
    fell too far below the float model.
    """
    sets = evaluation_sets(fitted.data, fitted.x_test)
    calibration = calibrate(fitted.classifier, fitted.x_validation, fitted.validation_labels)
    scores = score_both_ways(
        fitted.classifier,
        _variants(options),
        calibration.temperature,
        calibration_images=fitted.x_train,
        sets=sets,
        seed=options.seed,
    )
    evaluation = evaluate(scores, sets)
    report_text = format_evaluation(evaluation, calibration, sets)
    print(report_text, flush=True)

    _check_quantization_gate(scores.calibrated, evaluation.accuracy, options)
    serving = _choose_serving_default(scores.calibrated, evaluation.accuracy, options)

    with _staging_folder(options.out) as staging:
        _write_models(staging, scores)
        plot_training_curves(fitted.history, staging / CURVES_FILENAME)
        plot_confusion_matrix(evaluation.matrix, evaluation.accuracy, staging / CONFUSION_FILENAME)
        _plot_reliability(
            staging / RELIABILITY_FILENAME, scores, evaluation, serving.key, sets.labels
        )
        (staging / HISTORY_FILENAME).write_text(json.dumps(fitted.history, indent=2) + "\n")
        (staging / REPORT_FILENAME).write_text(report_text)
        card = _model_card(staging, fitted, options, calibration, scores, evaluation, serving)
        (staging / MODEL_CARD_FILENAME).write_text(card.to_json())
        _move_into_place(staging, options.out)
    return card


def _variants(options: TrainingOptions) -> list[export.TfliteVariant]:
    """The `.tflite` variants to export: the quantized ones, and the float ones if asked."""
    variants = list(export.QUANTIZED_VARIANTS)
    if options.float_variants:
        variants.extend(export.FLOAT_VARIANTS)
    return variants


def _check_quantization_gate(
    calibrated: dict[str, ExportedVariant], keras_accuracy: float, options: TrainingOptions
) -> None:
    """Raise `QualityGateError` if a quantized variant lost more accuracy than allowed."""
    failures = [
        f"{variant.key}: {(calibrated[variant.key].accuracy - keras_accuracy) * 100:+.2f} pp"
        for variant in export.QUANTIZED_VARIANTS
        if (keras_accuracy - calibrated[variant.key].accuracy) * 100
        > options.max_quantization_drop_pp
    ]
    if failures:
        raise QualityGateError(
            "quantized accuracy fell more than "
            f"{options.max_quantization_drop_pp} pp below the float model "
            f"({keras_accuracy:.4f}): {', '.join(failures)}; "
            f"nothing was written to {options.out}"
        )


def _choose_serving_default(
    calibrated: dict[str, ExportedVariant], keras_accuracy: float, options: TrainingOptions
) -> ServingChoice:
    """The variant to serve by default, chosen on each calibrated variant's accuracy and speed."""
    measurements: dict[str, Measurement] = {}
    for key, exported in calibrated.items():
        assert exported.latency is not None  # the calibrated exports are always timed
        measurements[key] = (
            exported.input_spec,
            exported.output_spec,
            exported.accuracy,
            exported.latency,
        )
    key, reason = choose_serving_default(
        measurements, keras_accuracy, options.serving_default_max_drop_pp
    )
    return ServingChoice(key=key, reason=reason, measurements=measurements)


@contextmanager
def _staging_folder(out: Path) -> Iterator[Path]:
    """An empty `.staging` folder inside `out`, removed on the way out whatever happens."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(out) / ".staging"
    # Emptied first: a run that was killed may have left one behind.
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_models(staging: Path, scores: Scores) -> None:
    """The calibrated `.h5` and every calibrated `.tflite`."""
    export.save_h5(scores.classifier, staging / export.H5_FILENAME)
    for exported in scores.calibrated.values():
        (staging / exported.variant.file).write_bytes(exported.content)


def _plot_reliability(
    path: Path, scores: Scores, evaluation: Evaluation, served: str, labels: np.ndarray
) -> None:
    """The served variant's reliability diagram on the test split, before and after."""
    # The served `.tflite`, not the Keras model: its probabilities are the ones clients get.
    effect = evaluation.effects[served]
    plot_reliability_diagram(
        {
            "before calibration": (
                reliability_bins(scores.uncalibrated[served].probabilities, labels),
                effect.before.ece,
            ),
            f"after (T = {scores.temperature:.2f})": (
                reliability_bins(scores.calibrated[served].probabilities, labels),
                effect.after.ece,
            ),
        },
        f"Reliability, served {served} .tflite, test split",
        path,
    )


def _model_card(
    folder: Path,
    fitted: FittedModel,
    options: TrainingOptions,
    calibration: TemperatureFit,
    scores: Scores,
    evaluation: Evaluation,
    serving: ServingChoice,
) -> ModelCard:
    """The card for the files already written to `folder` (it records their hashes)."""
    return build_card(
        options=options,
        folder=folder,
        variants=scores.variants,
        measurements=serving.measurements,
        effects=evaluation.effects,
        calibration=Calibration(
            temperature=round(calibration.temperature, 6),
            fitted_on="validation split (held out of training): digits and generated non-digits",
            fitted_count=calibration.fitted_count,
            ece_bins=ECE_BINS,
            validation_nll_before=round(calibration.nll_before, 6),
            validation_nll_after=round(calibration.nll_after, 6),
            reliability_diagram=RELIABILITY_FILENAME,
        ),
        serving_default=serving.key,
        serving_default_reason=serving.reason,
        not_a_digit=(
            NotADigit(
                output_index=NUM_CLASSES,
                method="an eleventh class, trained on generated non-digits (outlier "
                "exposure) and calibrated with the digits by the same temperature",
                training_negatives=fitted.train_negatives,
                kinds=list(KINDS),
                held_out=HELD_OUT_DESCRIPTION,
            ),
            evaluation.not_a_digit,
        ),
        keras_accuracy=evaluation.accuracy,
        keras_loss=evaluation.loss,
        report=evaluation.report,
        matrix=evaluation.matrix,
        data=fitted.data,
        # Digits only: the generated non-digits are counted in `training.negatives`.
        counts=(
            len(fitted.x_train) - fitted.train_negatives,
            int((fitted.validation_labels < NUM_CLASSES).sum()),
            len(fitted.x_test),
        ),
        source_train_count=fitted.source_train_count,
        parameters=scores.classifier.count_params(),
        training_seconds=fitted.training_seconds,
        teachers_seconds=fitted.teachers_seconds,
        created_at=datetime.now(timezone.utc).replace(microsecond=0),
    )


def _move_into_place(staging: Path, out: Path) -> None:
    """Every staged file into `out`."""
    # The card goes last, so a reader never sees a card before its files.
    for item in sorted(staging.iterdir(), key=lambda path: path.name == MODEL_CARD_FILENAME):
        item.replace(Path(out) / item.name)
