"""End to end on a tiny run: every artifact, a valid card, a .tflite that really classifies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from service.model_card import MODEL_CARD_FILENAME, ModelCard, sha256_of_file
from trainer.data import load_idx_folder
from trainer.options import TrainingOptions
from trainer.train import as_model_input, run_training

pytestmark = pytest.mark.slow


TRAIN_LIMIT, TEST_LIMIT, NEGATIVES = 3000, 1000, 600


def tiny_options(data: Path, out: Path) -> TrainingOptions:
    return TrainingOptions(
        data=str(data),
        out=out,
        epochs=2,
        train_limit=TRAIN_LIMIT,
        test_limit=TEST_LIMIT,
        augment=False,
        # An under-trained network quantizes less gracefully than a converged one;
        # the gate itself is exercised by the default margin on real runs.
        max_quantization_drop_pp=5.0,
        negatives=NEGATIVES,
        verbose=0,
    )


@pytest.fixture(scope="module")
def trained(mnist_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelCard]:
    out = tmp_path_factory.mktemp("models")
    card = run_training(tiny_options(mnist_folder, out))
    return out, card


def test_every_artifact_is_written(trained: tuple[Path, ModelCard]) -> None:
    out, _ = trained
    expected = {
        "mnist_cnn_model.h5",
        "mnist_cnn_int8.tflite",
        "mnist_cnn_dynamic.tflite",
        "model.json",
        "training_curves.png",
        "confusion_matrix.png",
        "reliability_diagram.png",
        "history.json",
        "evaluation.txt",
    }
    assert expected <= {path.name for path in out.iterdir()}
    assert not (out / ".staging").exists()
    for png in ("training_curves.png", "confusion_matrix.png", "reliability_diagram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= history.keys()


def test_model_card_matches_the_files(trained: tuple[Path, ModelCard], mnist_folder: Path) -> None:
    out, card = trained
    # The fixture holds the shared 10,000-image subset or, without ../shared, the
    # committed 2,000-digit sample: the limits apply to whichever is there.
    data = load_idx_folder(mnist_folder)
    expected_test = min(TEST_LIMIT, len(data.test_labels))
    expected_train = min(TRAIN_LIMIT, len(data.train_labels))
    reloaded = ModelCard.load(out / MODEL_CARD_FILENAME)
    assert reloaded == card
    for artifact in card.artifacts.values():
        path = out / artifact.file
        assert artifact.sha256 == sha256_of_file(path)
        assert artifact.size_bytes == path.stat().st_size
    assert card.artifacts[card.serving_default].format == "tflite"
    int8 = card.artifacts["int8"]
    assert int8.input is not None and int8.input.dtype == "int8" and int8.input.quantization
    assert card.artifacts["dynamic"].input is not None
    assert card.artifacts["dynamic"].input.dtype == "float32"
    assert card.data.test_count == expected_test
    assert card.data.train_count + card.data.validation_count == expected_train
    assert card.data.source_train_count == len(data.train_labels)
    assert sum(row.support for row in card.metrics.per_class.values()) == expected_test
    assert np.asarray(card.metrics.confusion_matrix).sum() == expected_test


def test_exported_tflite_classifies_held_out_digits(
    trained: tuple[Path, ModelCard], mnist_folder: Path
) -> None:
    """Loaded straight into ai_edge_litert, not through our wrapper: the file stands alone."""
    out, card = trained
    data = load_idx_folder(mnist_folder)
    images, labels = (
        data.test_images[-500:],
        data.test_labels[-500:],
    )  # not in the card's test_limit
    interpreter = Interpreter(model_path=str(out / "mnist_cnn_dynamic.tflite"))
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, [len(images), 28, 28, 1])
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, as_model_input(images))
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    assert accuracy > 0.8, accuracy  # chance is 0.1
    assert card.artifacts["dynamic"].test_accuracy is not None
    assert card.artifacts["dynamic"].test_accuracy > 0.8


def test_same_seed_and_data_give_the_same_metrics(
    trained: tuple[Path, ModelCard], mnist_folder: Path, tmp_path: Path
) -> None:
    _, first = trained
    second = run_training(tiny_options(mnist_folder, tmp_path))
    assert second.metrics == first.metrics
    for key in ("int8", "dynamic"):
        assert second.artifacts[key].test_accuracy == first.artifacts[key].test_accuracy


def test_bad_options_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        run_training(TrainingOptions(out=tmp_path, epochs=0))
    with pytest.raises(ValueError, match="validation fraction"):
        run_training(TrainingOptions(out=tmp_path, validation_fraction=0.9))


def test_card_records_the_calibration_for_every_artifact(
    trained: tuple[Path, ModelCard],
) -> None:
    out, card = trained
    calibration = card.calibration
    assert calibration is not None and calibration.temperature > 0
    # The validation split (never the test split), with its own generated non-digits.
    validation_negatives = round(NEGATIVES * card.training.validation_fraction)
    assert calibration.fitted_count == card.data.validation_count + validation_negatives
    assert calibration.folded_into_artifacts
    assert calibration.validation_nll_after <= calibration.validation_nll_before + 1e-9
    assert calibration.reliability_diagram is not None
    assert (out / calibration.reliability_diagram).is_file()
    for key, artifact in card.artifacts.items():
        effect = artifact.calibration
        assert effect is not None, key
        # The file is the calibrated one: its recorded accuracy is the "after" one.
        assert effect.after.accuracy == pytest.approx(artifact.test_accuracy, abs=1e-6)
        # One temperature rescales confidence; it never changes the float model's answers.
        if key == "keras":
            assert effect.before.accuracy == effect.after.accuracy
            assert effect.after.nll == pytest.approx(card.metrics.keras_test_loss, abs=1e-6)
        for quality in (effect.before, effect.after):
            assert 0 <= quality.ece <= 1 and quality.nll >= 0
    latency = card.artifacts[card.serving_default].latency
    assert latency is not None and latency.machine
    if Path("/proc/cpuinfo").is_file():
        assert latency.cpu_flags is not None
        assert ("avx2" in latency.machine) == ("avx2" in latency.cpu_flags)


def test_card_records_the_not_a_digit_output(trained: tuple[Path, ModelCard]) -> None:
    out, card = trained
    assert card.not_a_digit is not None and card.outputs == 11
    assert card.not_a_digit.training_negatives == NEGATIVES
    assert card.training.negatives == NEGATIVES and card.training.teachers == 0
    for key in ("int8", "dynamic"):
        artifact = card.artifacts[key]
        assert artifact.output is not None and artifact.output.shape == [11]
        quality = artifact.not_a_digit
        assert quality is not None, key
        assert quality.negatives == 2100 and quality.digits == card.data.test_count
        assert 0.5 <= quality.auroc <= 1  # even two epochs learn something
        # The threshold that keeps 99.5 % of digits refuses at most 0.5 % of them.
        assert set(quality.accepted_by_kind) == set(card.not_a_digit.kinds)
    assert "Not a digit:" in (out / "evaluation.txt").read_text()


def test_distilled_run_reuses_its_teachers(mnist_folder: Path, tmp_path: Path) -> None:
    """A student learns from a teacher; asking for the teachers again loads the saved one
    instead of fitting it."""
    from dataclasses import replace

    from trainer.distill import teacher_logits
    from trainer.train import prepare

    options = replace(
        tiny_options(mnist_folder, tmp_path),
        epochs=1,
        train_limit=1000,
        test_limit=200,
        negatives=100,
        teachers=1,
    )
    first = run_training(options)
    teachers = sorted((tmp_path / ".teachers").iterdir())
    assert [path.suffix for path in teachers] == [".h5", ".json"]
    assert first.training.teachers == 1 and first.training.teachers_duration_s
    stamp = teachers[0].stat().st_mtime_ns
    again = teacher_logits(options, prepare(options))
    assert teachers[0].stat().st_mtime_ns == stamp  # loaded, not fitted again
    assert round(again.seconds, 1) == first.training.teachers_duration_s
    assert again.train_logits.shape == (1000 - 50 + 100, 11)
