"""Training curves and the confusion matrix as PNG, rendered without a display."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and containers have no display

import matplotlib.pyplot as plt
import numpy as np

from trainer.calibrate import ReliabilityBins

CURVES_FILENAME = "training_curves.png"
CONFUSION_FILENAME = "confusion_matrix.png"
RELIABILITY_FILENAME = "reliability_diagram.png"


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


def plot_reliability_diagram(
    curves: dict[str, tuple[ReliabilityBins, float]], title: str, path: Path
) -> None:
    """Accuracy against confidence per bin (left) and how many answers fall in each bin (right).

    `curves` maps a label ("before", "after") to its bins and ECE. A calibrated model
    lies on the diagonal; the log-scale counts show that almost every answer sits in
    the top bin, where the gap matters most.
    """
    figure, (reliability_axis, count_axis) = plt.subplots(1, 2, figsize=(11, 4.4))
    reliability_axis.plot(
        [0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated"
    )
    width = None
    for number, (label, (table, ece)) in enumerate(curves.items()):
        filled = table.counts > 0
        centres = (table.edges[:-1] + table.edges[1:]) / 2
        width = (table.edges[1] - table.edges[0]) / (len(curves) + 1)
        offset = (number - (len(curves) - 1) / 2) * width
        reliability_axis.plot(
            table.confidence[filled],
            table.accuracy[filled],
            marker="o",
            markersize=4,
            label=f"{label} (ECE {ece:.2%})",
        )
        count_axis.bar(
            centres + offset, np.maximum(table.counts, 0.8), width=width, label=label, log=True
        )
    reliability_axis.set_xlim(0, 1)
    reliability_axis.set_ylim(0, 1.02)
    reliability_axis.set_xlabel("confidence (top probability), bin mean")
    reliability_axis.set_ylabel("accuracy in the bin")
    reliability_axis.set_title(title)
    reliability_axis.grid(alpha=0.3)
    reliability_axis.legend(loc="upper left", fontsize=8)
    count_axis.set_xlim(0, 1)
    count_axis.set_xlabel("confidence bin (15 equal-width bins)")
    count_axis.set_ylabel("answers (log scale)")
    count_axis.set_title("Answers per bin")
    count_axis.grid(alpha=0.3)
    count_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
