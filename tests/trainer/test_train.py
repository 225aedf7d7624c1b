"""End to end on a tiny run: every artifact, a valid card, a .tflite that really classifies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from service.model_card import MODEL_CARD_FILENAME, ModelCard, sha256_of_file
from trainer.data import load_idx_folder
from trainer.train import TrainingOptions, as_model_input, run_training

pytestmark = pytest.mark.slow


def tiny_options(data: Path, out: Path) -> TrainingOptions:
    return TrainingOptions(
        data=str(data),
        out=out,
        epochs=2,
        train_limit=3000,
        test_limit=1000,
        augment=False,
        # An under-trained network quantizes less gracefully than a converged one;
        # the gate itself is exercised by the default margin on real runs.
        max_quantization_drop_pp=5.0,
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
        "history.json",
        "evaluation.txt",
    }
    assert expected <= {path.name for path in out.iterdir()}
    assert not (out / ".staging").exists()
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= history.keys()


def test_model_card_matches_the_files(trained: tuple[Path, ModelCard]) -> None:
    out, card = trained
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
    assert card.data.test_count == 1000
    assert card.data.train_count + card.data.validation_count == 3000
    assert sum(row.support for row in card.metrics.per_class.values()) == 1000
    assert np.asarray(card.metrics.confusion_matrix).sum() == 1000


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
