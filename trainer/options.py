"""What a training run is asked to do (`TrainingOptions`), and how it can refuse to publish.

Apart from the steps that use them (trainer/train.py, trainer/publish.py, trainer/card.py),
so that those steps import the options rather than each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class QualityGateError(RuntimeError):
    """A quantized model lost more accuracy than allowed; nothing was published."""


@dataclass(frozen=True)
class TrainingOptions:
    data: str | None = None
    out: Path = Path("models")
    architecture: str = "digits_cnn"
    epochs: int = 24
    batch_size: int = 64
    learning_rate: float = 0.003
    label_smoothing: float = 0.0
    seed: int = 42
    augment: bool = True
    validation_fraction: float = 0.05
    float_variants: bool = False
    max_quantization_drop_pp: float = 0.3
    serving_default_max_drop_pp: float = 0.1
    train_limit: int | None = None
    test_limit: int | None = None
    name: str = "mnist-digits-cnn"
    verbose: int = 2
    # Generated non-digits in the training set (trainer/negatives.py); the validation split
    # gets `validation_fraction` as many more, drawn from another seed.
    negatives: int = 12_000
    # Distillation (trainer/distill.py): 0 teachers is the plain recipe.
    teachers: int = 0
    teacher_epochs: int | None = None  # default: `epochs`
    distill_weight: float = 0.7
    distill_temperature: float = 4.0

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(
                f"validation fraction must be in (0, 0.5), got {self.validation_fraction}"
            )
        for name in ("train_limit", "test_limit"):
            limit = getattr(self, name)
            if limit is not None and limit < 10:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 10, got {limit}")
        if self.negatives < 10:
            raise ValueError(f"negatives must be at least 10, got {self.negatives}")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise ValueError(f"teacher epochs must be at least 1, got {self.teacher_epochs}")
        if self.teachers < 0:
            raise ValueError(f"teachers must not be negative, got {self.teachers}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ValueError(
                f"distill temperature must be positive, got {self.distill_temperature}"
            )
        if self.max_quantization_drop_pp < 0 or self.serving_default_max_drop_pp < 0:
            raise ValueError("accuracy margins must not be negative")
