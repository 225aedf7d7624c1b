"""Export the trained classifier: the seed's `.h5`, and `.tflite` variants.

Full-integer quantization calibrates on a representative sample of *training*
images; the test split is never seen before the final evaluation.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from service.model_card import Quantization

log = logging.getLogger(__name__)

H5_FILENAME = "mnist_cnn_model.h5"


@dataclass(frozen=True)
class TfliteVariant:
    key: str
    file: str
    quantization: Quantization


INT8 = TfliteVariant("int8", "mnist_cnn_int8.tflite", "full_int8")
DYNAMIC = TfliteVariant("dynamic", "mnist_cnn_dynamic.tflite", "dynamic_range")
FLOAT32 = TfliteVariant("float32", "mnist_cnn_float32.tflite", "none")
FLOAT16 = TfliteVariant("float16", "mnist_cnn_float16.tflite", "float16")

QUANTIZED_VARIANTS = (INT8, DYNAMIC)
FLOAT_VARIANTS = (FLOAT32, FLOAT16)


def save_h5(classifier: keras.Model, path: Path) -> None:
    """The seed's file name and legacy HDF5 format, for users of the original notebook."""
    with warnings.catch_warnings():
        # Keras 3 warns that HDF5 is legacy; we keep it on purpose for compatibility.
        warnings.simplefilter("ignore", UserWarning)
        classifier.save(path)


def _representative_dataset(
    images: np.ndarray, count: int, seed: int
) -> Iterator[list[np.ndarray]]:
    chosen = np.random.default_rng(seed).choice(
        len(images), size=min(count, len(images)), replace=False
    )
    for index in chosen:
        yield [images[index : index + 1]]


def convert(
    classifier: keras.Model,
    variant: TfliteVariant,
    calibration_images: np.ndarray,
    seed: int,
    calibration_count: int = 500,
) -> bytes:
    """Convert to `.tflite`. `calibration_images` are float32 (N, 28, 28, 1) training images."""
    converter = tf.lite.TFLiteConverter.from_keras_model(classifier)
    if variant.quantization == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant.quantization == "full_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative_dataset(
            calibration_images, calibration_count, seed
        )
        # Integer-only ops end to end, int8 in and out: the service quantizes the
        # input itself with the scale and zero-point recorded in the model card.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif variant.quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant.quantization != "none":
        raise ValueError(f"unknown quantization {variant.quantization!r}")
    with contextlib.redirect_stdout(io.StringIO()):
        # Keras' SavedModel export prints every captured variable; keep the log readable.
        model_bytes: bytes = converter.convert()
    return model_bytes
