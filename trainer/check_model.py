"""Probability quality of `.tflite` files on the test split, in LiteRT, as the service returns them.

    python -m trainer.check_model models/mnist_cnn_dynamic.tflite [--data FOLDER]

Prints accuracy, NLL, ECE (15 equal-width bins) and mean confidence overall, on the
correct and on the wrong answers, and for a model with the not-a-digit output its AUROC
and shares on the held-out non-digits: the card's figures, re-measured from the file alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from service.model_card import DEFAULT_NOT_A_DIGIT_THRESHOLD, NUM_CLASSES
from service.runtime.interpreter import LiteRTModel
from trainer.calibrate import probability_quality
from trainer.data import load_mnist
from trainer.measure import tflite_probabilities
from trainer.negatives import KINDS, held_out
from trainer.not_a_digit import format_quality, measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.check_model")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files")
    parser.add_argument("--data", help="MNIST folder or .npz (default: as the trainer)")
    args = parser.parse_args(argv)
    data = load_mnist(args.data)
    images = (data.test_images.astype("float32") / 255.0)[..., None]
    print(f"{len(images)} test images from {data.source}")
    negatives, kinds = held_out(data.test_images)
    for path in args.models:
        model = LiteRTModel(path.read_bytes())
        outputs = tflite_probabilities(model, images)
        quality = probability_quality(outputs[:, :NUM_CLASSES], data.test_labels)
        wrong = quality.mean_confidence_wrong
        print(
            f"{path}: accuracy {quality.accuracy:.2%}, NLL {quality.nll:.4f}, "
            f"ECE {quality.ece:.2%}, mean confidence {quality.mean_confidence:.4f} "
            f"(correct {quality.mean_confidence_correct or 0:.4f}, "
            f"wrong {'n/a' if wrong is None else f'{wrong:.4f}'})"
        )
        if outputs.shape[1] > NUM_CLASSES:
            negative_outputs = tflite_probabilities(model, negatives[..., None])
            threshold = DEFAULT_NOT_A_DIGIT_THRESHOLD
            separation = measure(outputs, negative_outputs, kinds, KINDS, threshold)
            print(format_quality("  not a digit", separation))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
