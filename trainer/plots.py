"""Training curves and the confusion matrix as PNG, rendered without a display."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and containers have no display

import matplotlib.pyplot as plt
import numpy as np

CURVES_FILENAME = "training_curves.png"
CONFUSION_FILENAME = "confusion_matrix.png"


def plot_training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Accuracy and loss per epoch, training against validation."""
    epochs = range(1, len(history["loss"]) + 1)
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric, title in (
        (accuracy_axis, "accuracy", "Accuracy"),
        (loss_axis, "loss", "Loss"),
    ):
        axis.plot(epochs, history[metric], marker="o", markersize=3, label="training")
        axis.plot(epochs, history[f"val_{metric}"], marker="o", markersize=3, label="validation")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_confusion_matrix(matrix: np.ndarray, accuracy: float, path: Path) -> None:
    """Counts per (true, predicted) pair; the log colour scale keeps the few errors visible."""
    figure, axis = plt.subplots(figsize=(6.4, 5.6))
    image = axis.imshow(
        matrix,
        cmap="Blues",
        norm=matplotlib.colors.LogNorm(vmin=1, vmax=max(int(matrix.max()), 2)),
    )
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    threshold = matrix.max() / 4
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            count = int(matrix[row, column])
            if count:
                color = "white" if count > threshold else "black"
                axis.text(
                    column, row, str(count), ha="center", va="center", fontsize=8, color=color
                )
    axis.set_xticks(range(matrix.shape[1]))
    axis.set_yticks(range(matrix.shape[0]))
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    axis.set_title(f"Confusion matrix (test accuracy {accuracy:.2%})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
