"""Command line for the trainer (`python -m trainer`, `digits-train`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from trainer.data import DATA_ENV_VAR
from trainer.model import ARCHITECTURES
from trainer.options import QualityGateError, TrainingOptions
from trainer.train import run_training

# `--quick`: a demo/test preset that finishes in well under a minute on 2 cores.
QUICK_PRESET = {"epochs": 2, "train_limit": 3000, "augment": False, "negatives": 600}


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainingOptions()
    parser = argparse.ArgumentParser(
        prog="digits-train",
        description="Train the MNIST CNN and export .h5, quantized .tflite files and model.json.",
    )
    parser.add_argument(
        "--data",
        help="a folder with the four MNIST IDX files (gzipped or not) or a Keras mnist.npz; "
        f"default ${DATA_ENV_VAR}, else the Keras download (needs internet)",
    )
    parser.add_argument(
        "--out", type=Path, default=defaults.out, help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--architecture",
        choices=sorted(ARCHITECTURES),
        default=defaults.architecture,
        help="network: digits_cnn (default) or the seed's seed_cnn",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="initial Adam learning rate, cosine-decayed to 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        default=defaults.label_smoothing,
        help="default: %(default)s",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=defaults.augment,
        help="random shifts, rotations and zooms while training (default: on)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=defaults.validation_fraction,
        help="share of the training data held out for validation (default: %(default)s)",
    )
    parser.add_argument(
        "--float-variants",
        action="store_true",
        help="also export float32 and float16 .tflite files",
    )
    parser.add_argument(
        "--max-quantization-drop",
        type=float,
        default=defaults.max_quantization_drop_pp,
        metavar="PP",
        help="fail if a quantized model's test accuracy is more than PP "
        "percentage points below the float model's (default: %(default)s)",
    )
    parser.add_argument(
        "--negatives",
        type=int,
        help="generated non-digits added to the training set, for the not-a-digit answer "
        f"(default: {defaults.negatives}; --quick: {QUICK_PRESET['negatives']})",
    )
    parser.add_argument(
        "--teachers",
        type=int,
        default=defaults.teachers,
        metavar="N",
        help="first train N networks from other seeds, then distil their mean answers into "
        "the exported one (default: %(default)s, the plain recipe; `make train-full` "
        "reproduces the committed model)",
    )
    parser.add_argument(
        "--teacher-epochs",
        type=int,
        metavar="N",
        help="epochs of each teacher (default: --epochs)",
    )
    parser.add_argument(
        "--distill-weight",
        type=float,
        default=defaults.distill_weight,
        help="share of the loss from the teachers, with --teachers (default: %(default)s)",
    )
    parser.add_argument(
        "--distill-temperature",
        type=float,
        default=defaults.distill_temperature,
        help="softmax temperature of the teachers' targets (default: %(default)s)",
    )
    parser.add_argument("--train-limit", type=int, help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, help="evaluate on only the first N test images")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="demo preset: 2 epochs on 3,000 images and 600 non-digits, no augmentation",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return parser


def options_from_args(args: argparse.Namespace) -> TrainingOptions:
    values = {
        "data": args.data,
        "out": args.out,
        "architecture": args.architecture,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "label_smoothing": args.label_smoothing,
        "seed": args.seed,
        "augment": args.augment,
        "validation_fraction": args.validation_fraction,
        "float_variants": args.float_variants,
        "max_quantization_drop_pp": args.max_quantization_drop,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
        "verbose": 0 if args.quiet else 2,
        "negatives": TrainingOptions.negatives if args.negatives is None else args.negatives,
        "teachers": args.teachers,
        "teacher_epochs": args.teacher_epochs,
        "distill_weight": args.distill_weight,
        "distill_temperature": args.distill_temperature,
    }
    if args.quick:
        values.update(QUICK_PRESET)
        for key in ("train_limit", "negatives"):  # an explicit value wins over the preset
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
    return TrainingOptions(**values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    try:
        card = run_training(options_from_args(args))
    except (ValueError, QualityGateError) as error:
        print(f"digits-train: error: {error}", file=sys.stderr)
        return 2
    served = card.artifacts[card.serving_default]
    print(
        f"wrote {args.out}: serving default {served.file}, "
        f"test accuracy {served.test_accuracy:.4f} "
        f"(Keras {card.metrics.keras_test_accuracy:.4f})"
    )
    return 0
