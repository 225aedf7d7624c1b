"""Network architectures and the training-only augmentation block.

The exported model is always the plain classifier: augmentation wraps it for
training only, so it never reaches the `.h5` or any `.tflite`.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from trainer.data import IMAGE_SIZE, NUM_CLASSES

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
# One output per digit, then one for "not a digit" (service/model_card.py: NotADigit).
NOT_A_DIGIT = NUM_CLASSES
NUM_OUTPUTS = NUM_CLASSES + 1


def build_seed_cnn() -> keras.Model:
    """The seed's network, kept as-is for comparison: two conv/pool blocks, dense 128."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(NUM_OUTPUTS, activation="softmax", name="probabilities"),
        ],
        name="seed_cnn",
    )


def _conv_bn_relu(filters: int, kernel_size: int, name: str) -> list[layers.Layer]:
    # Batch normalization folds into the convolution at conversion time, so it
    # costs nothing at inference and makes the small data set train steadily.
    # Momentum 0.9 (not Keras' 0.99) lets the moving statistics settle even in
    # the few hundred steps of a --quick run.
    return [
        layers.Conv2D(filters, kernel_size, use_bias=False, name=f"{name}_conv"),
        layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
        layers.ReLU(name=f"{name}_relu"),
    ]


def build_digits_cnn() -> keras.Model:
    """The default: conv 5×5/32, pool, conv 3×3/64 twice, pool, dense 128, dropout.

    Sized for the serving budget (about 4.8 M multiply-adds and 190 k parameters,
    ~200 KB as a dynamic-range .tflite): the 5×5 first layer sees whole pen
    strokes at full resolution, and the two wider 3×3 layers run after pooling,
    on 12×12 and 10×10 maps, where they are cheap.
    """
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            *_conv_bn_relu(32, 5, "block1"),  # 24×24
            layers.MaxPooling2D(2, name="pool1"),  # 12×12
            *_conv_bn_relu(64, 3, "block2"),  # 10×10
            *_conv_bn_relu(64, 3, "block3"),  # 8×8
            layers.MaxPooling2D(2, name="pool2"),  # 4×4
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(NUM_OUTPUTS, activation="softmax", name="probabilities"),
        ],
        name="digits_cnn",
    )


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "digits_cnn": build_digits_cnn,
    "seed_cnn": build_seed_cnn,
}


def build_classifier(architecture: str) -> keras.Model:
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r}; choose one of: {known}") from None
    return builder()


def build_augmentation(seed: int) -> keras.Sequential:
    """Small shifts, rotations and zooms: the variation of real handwriting, not new classes."""
    return keras.Sequential(
        [
            layers.RandomRotation(0.03, fill_mode="constant", seed=seed),  # about ±11°
            layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2),
        ],
        name="augmentation",
    )


def build_training_model(classifier: keras.Model, augment: bool, seed: int) -> keras.Model:
    """The classifier, optionally behind augmentation; weights are shared with `classifier`."""
    if not augment:
        return classifier
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    outputs = classifier(build_augmentation(seed)(inputs))
    return keras.Model(inputs, outputs, name=f"{classifier.name}_augmented")


class FinalLogits(layers.Layer):
    """The classifier's final Dense layer without its softmax: the same variables, so that
    a loss on logits (distillation at a temperature) trains the exported weights."""

    def __init__(self, dense: layers.Dense, **kwargs: object) -> None:
        super().__init__(name="logits", **kwargs)
        self.dense = dense

    def call(self, features: keras.KerasTensor) -> keras.KerasTensor:
        return keras.ops.matmul(features, self.dense.kernel) + self.dense.bias


def build_logits_model(classifier: keras.Model, augment: bool, seed: int) -> keras.Model:
    """Like `build_training_model`, but ending in logits; weights shared with `classifier`."""
    final = classifier.layers[-1]
    features = keras.Model(classifier.inputs, final.input, name=f"{classifier.name}_features")
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    shown = build_augmentation(seed)(inputs) if augment else inputs
    return keras.Model(
        inputs, FinalLogits(final)(features(shown)), name=f"{classifier.name}_logits"
    )
