"""Confusion matrix and per-class report against figures worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.evaluate import confusion_matrix, per_class_report


def test_confusion_matrix_and_report() -> None:
    true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    matrix = confusion_matrix(true, predicted)
    assert matrix[0, 0] == 2 and matrix[0, 1] == 1 and matrix[1, 1] == 1 and matrix[1, 2] == 1
    assert matrix.sum() == 6
    report = per_class_report(matrix)
    assert report["0"].precision == 1.0 and report["0"].recall == pytest.approx(0.6667, abs=1e-4)
    assert report["1"].precision == 0.5 and report["1"].recall == 0.5 and report["1"].f1 == 0.5
    assert report["2"].precision == 0.5 and report["2"].recall == 1.0
    assert report["3"].support == 0 and report["3"].f1 == 0.0


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="label shapes differ"):
        confusion_matrix(np.zeros(3), np.zeros(4))
