"""Open the model a card names and prove it is the one the card describes.

Everything here runs once, at start-up; any problem becomes a one-line
`ModelLoadError` so that `python -m service` can exit with a clear message.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.errors import ModelLoadError
from service.model_card import (
    DIGIT_LABELS,
    IMAGE_SIDE,
    Artifact,
    ModelCard,
    TensorSpec,
)
from service.runtime.interpreter import LiteRTModel


@dataclass(frozen=True)
class VerifiedModel:
    """A card, the artifact being served, and interpreters proven to match it."""

    card: ModelCard
    key: str
    artifact: Artifact
    path: Path
    interpreters: list[LiteRTModel]


def load_verified_model(
    card_path: Path, model_file: str | None, *, count: int, num_threads: int
) -> VerifiedModel:
    """Load the card, pick the artifact, check its bytes and tensors, warm it up."""
    try:
        card = ModelCard.load(card_path)
    except ValueError as error:
        hint = "" if card_path.exists() else " (set DIGITS_MODEL_CARD to the card's path)"
        raise ModelLoadError(_one_line(str(error)) + hint) from None
    if card.labels != list(DIGIT_LABELS):
        raise ModelLoadError(f"{card_path}: labels must be the digits 0-9, got {card.labels}")
    key, artifact = _choose_artifact(card, card_path, model_file)
    path = card_path.parent / artifact.file
    content = _read_checked(path, artifact)
    interpreters = [_open(content, path, num_threads) for _ in range(count)]
    for interpreter in interpreters:
        _check_tensors(interpreter, artifact, path, card.outputs)
        _warm_up(interpreter, path, card.outputs)
    return VerifiedModel(card, key, artifact, path, interpreters)


def _choose_artifact(
    card: ModelCard, card_path: Path, model_file: str | None
) -> tuple[str, Artifact]:
    if model_file is None:
        return card.serving_default, card.artifacts[card.serving_default]
    for key, artifact in card.artifacts.items():
        if artifact.file == model_file:
            if artifact.format != "tflite":
                raise ModelLoadError(f"model file {model_file} is not a .tflite artifact")
            return key, artifact
    listed = ", ".join(a.file for a in card.artifacts.values() if a.format == "tflite")
    raise ModelLoadError(
        f"model file {model_file!r} is not listed in {card_path} (it lists: {listed})"
    )


def _read_checked(path: Path, artifact: Artifact) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"cannot read model file {path}: {error.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != artifact.sha256:
        raise ModelLoadError(
            f"model file {path} does not match its card: sha256 is {digest}, "
            f"the card says {artifact.sha256}"
        )
    return content


def _open(content: bytes, path: Path, num_threads: int) -> LiteRTModel:
    try:
        return LiteRTModel(content, num_threads=num_threads)
    except (ValueError, RuntimeError) as error:
        raise ModelLoadError(f"cannot open {path} with LiteRT: {_one_line(str(error))}") from None


def _check_tensors(interpreter: LiteRTModel, artifact: Artifact, path: Path, outputs: int) -> None:
    for role, expected, actual in (
        ("input", artifact.input, interpreter.input_spec),
        ("output", artifact.output, interpreter.output_spec),
    ):
        if expected is None:
            raise ModelLoadError(f"the card lists no {role} tensor for {artifact.file}")
        if not _same_spec(expected, actual):
            raise ModelLoadError(
                f"{role} tensor of {path} does not match its card: "
                f"model has {_describe(actual)}, card says {_describe(expected)}"
            )
    if artifact.input is not None and artifact.input.shape not in (
        [IMAGE_SIDE, IMAGE_SIDE, 1],
        [IMAGE_SIDE, IMAGE_SIDE],
    ):
        side = f"{IMAGE_SIDE}×{IMAGE_SIDE}"
        raise ModelLoadError(f"{path}: input shape {artifact.input.shape} is not {side}")
    if artifact.output is not None and artifact.output.shape != [outputs]:
        # The card's `not_a_digit` says whether the model has the 11th output.
        what = "10 digits and not-a-digit" if outputs > len(DIGIT_LABELS) else "10 digits"
        raise ModelLoadError(
            f"{path}: output shape {artifact.output.shape} is not [{outputs}] ({what}, "
            "as its card says)"
        )


def _same_spec(expected: TensorSpec, actual: TensorSpec) -> bool:
    if expected.shape != actual.shape or expected.dtype != actual.dtype:
        return False
    if expected.quantization is None or actual.quantization is None:
        return expected.quantization is None and actual.quantization is None
    # The card stores the scale as JSON text; allow for float round-off, nothing more.
    return expected.quantization.zero_point == actual.quantization.zero_point and math.isclose(
        expected.quantization.scale, actual.quantization.scale, rel_tol=1e-6
    )


def _describe(spec: TensorSpec) -> str:
    text = f"shape {spec.shape} {spec.dtype}"
    if spec.quantization is not None:
        q = spec.quantization
        text += f" (scale {q.scale:.9g}, zero point {q.zero_point})"
    return text


def _warm_up(interpreter: LiteRTModel, path: Path, outputs: int) -> None:
    # The first invoke allocates and packs weights; do it now, not on a user's request,
    # and check that the output really is a probability distribution.
    blank = np.zeros((1, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    try:
        probabilities = interpreter.run(blank)
    except (ValueError, RuntimeError) as error:
        raise ModelLoadError(f"warm-up inference with {path} failed: {error}") from None
    total = float(probabilities.sum())
    if probabilities.shape != (1, outputs) or not math.isfinite(total) or abs(total - 1) > 0.02:
        raise ModelLoadError(
            f"warm-up inference with {path} returned no probabilities "
            f"(shape {probabilities.shape}, sum {total:.4g})"
        )


def _one_line(text: str, limit: int = 400) -> str:
    # Pydantic and LiteRT messages span lines; the CLI promises a single line.
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
