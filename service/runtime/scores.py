"""The model's output tensor as its answers: each digit's probability, and not-a-digit.

A model with the not-a-digit output (`ModelCard.not_a_digit`) has one value more after the
digits' (`NotADigit.output_index` is `NUM_CLASSES`, which the card checks); all of them
sum to 1. The digits' probabilities are kept as the model gave them, not renormalized:
they sum to 1 − not_a_digit, so a non-digit's best digit has a low probability.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from service.model_card import NUM_CLASSES


class Scores(NamedTuple):
    """What the model said, one row per image, in input order."""

    probabilities: np.ndarray  # (N, 10) float64: each digit's; rows sum to 1 − not_a_digit
    not_a_digit: np.ndarray | None  # (N,) float64, None for a model without the output


def split_outputs(outputs: np.ndarray) -> Scores:
    """(N, 10) or (N, 11) probabilities summing to 1 → `Scores` (views, no copy)."""
    if outputs.shape[1] == NUM_CLASSES:
        return Scores(outputs, None)
    return Scores(outputs[:, :NUM_CLASSES], outputs[:, NUM_CLASSES])


def is_digit(not_a_digit: np.ndarray | None, threshold: float, count: int) -> np.ndarray:
    """(N,) bool: whether each image is answered as a digit, i.e. its not-a-digit probability
    is below `threshold`; every image is, for a model without the output."""
    if not_a_digit is None:
        return np.ones(count, dtype=bool)
    return not_a_digit < threshold
