"""Test-set metrics: accuracy, a per-class report and the confusion matrix (numpy only)."""

from __future__ import annotations

import numpy as np

from service.model_card import ClassReport
from trainer.data import NUM_CLASSES


def confusion_matrix(true_labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Rows are the true label, columns the predicted one."""
    if true_labels.shape != predicted.shape:
        raise ValueError(f"label shapes differ: {true_labels.shape} vs {predicted.shape}")
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (true_labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def per_class_report(matrix: np.ndarray) -> dict[str, ClassReport]:
    """Precision, recall, F1 and support per digit, like scikit-learn's classification_report."""
    true_positives = np.diag(matrix).astype(np.float64)
    predicted_counts = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    report: dict[str, ClassReport] = {}
    for digit in range(NUM_CLASSES):
        precision = (
            true_positives[digit] / predicted_counts[digit] if predicted_counts[digit] else 0.0
        )
        recall = true_positives[digit] / support[digit] if support[digit] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[str(digit)] = ClassReport(
            precision=round(float(precision), 4),
            recall=round(float(recall), 4),
            f1=round(float(f1), 4),
            support=int(support[digit]),
        )
    return report


def format_report(report: dict[str, ClassReport], accuracy: float) -> str:
    lines = [f"{'digit':>6} {'precision':>10} {'recall':>8} {'f1':>8} {'support':>8}"]
    for digit, row in report.items():
        lines.append(
            f"{digit:>6} {row.precision:>10.4f} {row.recall:>8.4f} {row.f1:>8.4f} {row.support:>8d}"
        )
    total = sum(row.support for row in report.values())
    lines.append(f"{'accuracy':>6} {'':>10} {'':>8} {accuracy:>8.4f} {total:>8d}")
    return "\n".join(lines)


def format_confusion_matrix(matrix: np.ndarray) -> str:
    header = "true\\pred " + " ".join(f"{digit:>5}" for digit in range(NUM_CLASSES))
    rows = [
        f"{digit:>9} " + " ".join(f"{count:>5}" for count in matrix[digit])
        for digit in range(NUM_CLASSES)
    ]
    return "\n".join([header, *rows])
