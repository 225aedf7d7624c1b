"""Digits against non-digits: AUROC and the shares at a threshold, checked by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trainer.not_a_digit import auroc, measure


def _outputs(not_a_digit: list[float], confidence: float = 0.95) -> np.ndarray:
    rows = []
    for score in not_a_digit:
        digits = np.full(10, (1 - score) * (1 - confidence) / 9)
        digits[3] = (1 - score) * confidence
        rows.append([*digits, score])
    return np.asarray(rows)


def test_auroc_is_the_share_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    low, high = rng.integers(0, 5, 40) / 4, rng.integers(1, 6, 30) / 4  # many ties
    pairs = [1.0 if h > lo else 0.5 if h == lo else 0.0 for lo, h in itertools.product(low, high)]
    assert auroc(low, high) == pytest.approx(np.mean(pairs))
    assert auroc(np.zeros(3), np.ones(3)) == 1.0
    assert auroc(np.ones(3), np.zeros(3)) == 0.0


def test_shares_at_the_threshold_and_at_the_one_that_keeps_digits() -> None:
    digits = _outputs([0.01] * 199 + [0.6])
    negatives = _outputs([0.9, 0.7, 0.3, 0.05], confidence=0.99)
    quality = measure(digits, negatives, np.array([0, 0, 1, 1]), ("letters", "shapes"), 0.5)
    assert quality.digits_refused == pytest.approx(1 / 200)
    assert quality.negatives_accepted == pytest.approx(2 / 4)
    # Accepted non-digits: 0.3 (digit confidence 0.7 × 0.99) and 0.05 (0.95 × 0.99 ≥ 0.9).
    assert quality.negatives_confident == pytest.approx(1 / 4)
    assert quality.accepted_by_kind == {"letters": 0.0, "shapes": 1.0}
    # Keeping 99.5 % of 200 digits refuses one of them, the one at 0.6: the threshold
    # lies just above the others, and every non-digit scores higher.
    assert quality.keep_99_5_threshold == pytest.approx(0.01, abs=2e-6)
    assert quality.keep_99_5_threshold > 0.01
    assert quality.negatives_accepted_at_keep_99_5 == 0.0
