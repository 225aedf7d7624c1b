"""What a run trains on: the splits `trainer.train.prepare` builds, apart from the steps
that use them (trainer/train.py, trainer/distill.py), so that neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.data import MnistData


@dataclass(frozen=True)
class PreparedData:
    """The splits the fit sees: digits and generated non-digits (label `NOT_A_DIGIT`)."""

    data: MnistData
    source_train_count: int
    x_train: np.ndarray  # float32 (N, 28, 28, 1)
    train_labels: np.ndarray  # int64 (N,), 0-9 or NOT_A_DIGIT
    x_validation: np.ndarray
    validation_labels: np.ndarray
    x_test: np.ndarray  # digits only: the canonical test split
    train_negatives: int
    validation_negatives: int
