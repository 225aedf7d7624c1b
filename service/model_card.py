"""The model card (`model.json`): the contract between the trainer and the service.

The trainer writes it, the service verifies against it. It lives in `service/`
because the runtime owns the contract; the trainer imports it, never the reverse.
Nothing here may import TensorFlow.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MODEL_CARD_FILENAME = "model.json"
SCHEMA_VERSION = 1

# The task every card describes, and so every part of the service: one grey 28×28
# image in, one probability per digit out, the labels being the digits themselves.
IMAGE_SIDE = 28
DIGIT_LABELS: tuple[str, ...] = tuple(str(digit) for digit in range(10))
NUM_CLASSES = len(DIGIT_LABELS)

# An image is answered as "not a digit" when the model's not-a-digit probability is at
# least this. The probability is calibrated, so 0.5 is where "not a digit" is the likelier
# answer; the service's default (DIGITS_NOT_A_DIGIT_THRESHOLD) and every card's figures
# use it, and a request may choose another.
DEFAULT_NOT_A_DIGIT_THRESHOLD = 0.5

TensorDType = Literal["float32", "float16", "int8", "uint8"]
Quantization = Literal["none", "float16", "dynamic_range", "full_int8"]
ArtifactFormat = Literal["keras_h5", "tflite"]


class _Strict(BaseModel):
    # Unknown keys in a card are a sign of a different trainer version; refuse them
    # instead of silently ignoring a field the service should have honoured.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class QuantizationParams(_Strict):
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: float = Field(gt=0)
    zero_point: int


class TensorSpec(_Strict):
    """A tensor as the interpreter sees it (batch dimension excluded)."""

    shape: list[int] = Field(min_length=1)
    dtype: TensorDType
    quantization: QuantizationParams | None = None


class InputContract(_Strict):
    """What every artifact expects before its own dtype conversion.

    The service normalizes any upload into exactly this: a 28×28 single-channel
    image, white digit on black, centred by centre of mass in a 20×20 box, pixel
    values scaled to [0, 1] by dividing 8-bit intensities by 255.
    """

    height: int = IMAGE_SIDE
    width: int = IMAGE_SIDE
    channels: int = 1
    scaling: Literal["divide_by_255"] = "divide_by_255"
    value_range: tuple[float, float] = (0.0, 1.0)
    foreground: Literal["white_on_black"] = "white_on_black"
    layout: Literal["NHWC"] = "NHWC"


class LatencyMeasurement(_Strict):
    """Speed of one artifact in the LiteRT interpreter, measured by the trainer."""

    single_image_us: float = Field(description="median invoke time for one image, microseconds")
    batch256_images_per_s: float = Field(description="images per second at batch 256")
    num_threads: int = 1
    machine: str = Field(
        description="CPU the figures were measured on: model name and its relevant vector flags"
    )
    cpu_flags: list[str] | None = Field(
        default=None,
        description="which of avx2, fma, avx512f, avx512_vnni, avx_vnni the CPU has: "
        "the choice between dynamic-range and full-int8 depends on them",
    )


class ProbabilityQuality(_Strict):
    """How good the probabilities are on the test split, not only the top-1 answers."""

    accuracy: float
    nll: float = Field(description="mean negative log-likelihood of the true label, nats")
    ece: float = Field(
        description="expected calibration error of the top probability, 15 equal-width bins"
    )
    mean_confidence: float
    mean_confidence_correct: float | None = Field(
        default=None, description="mean top probability on the correct answers"
    )
    mean_confidence_wrong: float | None = Field(
        default=None, description="mean top probability on the wrong answers"
    )


class CalibrationEffect(_Strict):
    """One artifact's probability quality without and with the calibration."""

    before: ProbabilityQuality
    after: ProbabilityQuality


class NotADigitQuality(_Strict):
    """How well one artifact tells digits from non-digits: measured by the trainer on the
    canonical test digits and on held-out generated non-digits it never trained or tuned on."""

    digits: int = Field(description="real digits measured (the canonical test split)")
    negatives: int = Field(description="held-out non-digits measured")
    auroc: float = Field(
        description="area under the ROC curve of `not_a_digit`, non-digits against digits"
    )
    threshold: float = Field(description="the threshold the next three shares are measured at")
    digits_refused: float = Field(description="share of real digits answered as not a digit")
    negatives_accepted: float = Field(description="share of non-digits answered as a digit")
    negatives_confident: float = Field(
        description="share of non-digits answered as a digit with confidence ≥ 0.9"
    )
    keep_99_5_threshold: float = Field(
        description="the threshold that keeps 99.5 % of real digits (refuses 0.5 %)"
    )
    negatives_accepted_at_keep_99_5: float = Field(
        description="share of non-digits answered as a digit at `keep_99_5_threshold`"
    )
    accepted_by_kind: dict[str, float] = Field(
        description="share of each kind of non-digit answered as a digit at `threshold`"
    )


class Artifact(_Strict):
    """One exported file and how it performs."""

    file: str = Field(description="file name, relative to the card's folder")
    format: ArtifactFormat
    quantization: Quantization
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    input: TensorSpec | None = None
    output: TensorSpec | None = None
    test_accuracy: float | None = Field(
        default=None, description="accuracy on the full test split (LiteRT for .tflite)"
    )
    accuracy_delta_pp: float | None = Field(
        default=None,
        description="test accuracy minus the float Keras model's, in percentage points",
    )
    latency: LatencyMeasurement | None = None
    calibration: CalibrationEffect | None = Field(
        default=None,
        description="test-split quality before and after calibration (this file is the after)",
    )
    not_a_digit: NotADigitQuality | None = Field(
        default=None, description="digits against held-out non-digits (models with the output)"
    )


class ClassReport(_Strict):
    precision: float
    recall: float
    f1: float
    support: int


class Metrics(_Strict):
    keras_test_accuracy: float
    keras_test_loss: float
    per_class: dict[str, ClassReport]
    confusion_matrix: list[list[int]] = Field(description="rows: true label, columns: predicted")


class DataProvenance(_Strict):
    source: str = Field(
        description="where the data came from: a folder, a file or the Keras download"
    )
    description: str
    train_count: int
    validation_count: int
    test_count: int
    source_train_count: int | None = Field(
        default=None,
        description="training images the source holds, before any --train-limit and the "
        "validation split",
    )


class TrainingConfig(_Strict):
    architecture: str
    epochs: int
    batch_size: int
    learning_rate: float
    label_smoothing: float = 0.0
    seed: int
    augmentation: bool
    validation_fraction: float
    parameters: int
    duration_s: float
    tensorflow_version: str
    keras_version: str
    negatives: int | None = Field(
        default=None, description="generated non-digits added to the training set"
    )
    teachers: int = Field(
        default=0, description="networks the served one was distilled from (0: trained alone)"
    )
    teacher_epochs: int | None = None
    distill_weight: float | None = None
    distill_temperature: float | None = None
    teachers_duration_s: float | None = Field(
        default=None,
        description="the teachers' own training time, on top of `duration_s` (which covers "
        "this run: data, the student's fit and everything after; teachers trained by an "
        "earlier run were loaded, not trained again)",
    )


class Calibration(_Strict):
    """Temperature scaling, fitted on the validation split, already inside every artifact."""

    method: Literal["temperature_scaling"] = "temperature_scaling"
    temperature: float = Field(gt=0, description="the final layer's logits are divided by this")
    fitted_on: str = Field(description="the data T was fitted on (never the test split)")
    fitted_count: int
    folded_into_artifacts: Literal[True] = Field(
        default=True,
        description="the final layer's kernel and bias are divided by T in every exported "
        "file, so their outputs are already calibrated and the runtime applies nothing",
    )
    ece_bins: int = 15
    validation_nll_before: float
    validation_nll_after: float
    reliability_diagram: str | None = Field(
        default=None, description="PNG beside the card: reliability before and after"
    )


class NotADigit(_Strict):
    """The model's answer to "is this a digit at all?": one more output after the digits'.

    The output tensor then holds len(labels) + 1 probabilities that sum to 1: one per
    digit, in label order, and last the probability that the image is not a digit."""

    output_index: int = Field(description="index of the not-a-digit probability in the output")
    method: str = Field(description="how the model learned it")
    training_negatives: int = Field(description="generated non-digits in the training set")
    kinds: list[str] = Field(description="the kinds of non-digit it was trained and measured on")
    held_out: str = Field(description="the non-digits the card's figures were measured on")


class ModelCard(_Strict):
    """Everything the service needs to verify and describe a trained model."""

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    created_at: datetime
    labels: list[str] = Field(min_length=2)
    input: InputContract = InputContract()
    artifacts: dict[str, Artifact]
    serving_default: str = Field(description="key in `artifacts` that the service loads by default")
    serving_default_reason: str
    training: TrainingConfig
    data: DataProvenance
    metrics: Metrics
    calibration: Calibration | None = None
    not_a_digit: NotADigit | None = None

    @property
    def outputs(self) -> int:
        """Values in the output tensor: a probability per label, plus not-a-digit if any."""
        return len(self.labels) + (self.not_a_digit is not None)

    @model_validator(mode="after")
    def _serving_default_is_a_tflite_artifact(self) -> ModelCard:
        artifact = self.artifacts.get(self.serving_default)
        if artifact is None:
            raise ValueError(f"serving_default {self.serving_default!r} is not among the artifacts")
        if artifact.format != "tflite":
            raise ValueError(f"serving_default {self.serving_default!r} is not a .tflite artifact")
        if self.not_a_digit is not None and self.not_a_digit.output_index != len(self.labels):
            raise ValueError(
                f"not_a_digit.output_index must be {len(self.labels)}, after the labels, "
                f"got {self.not_a_digit.output_index}"
            )
        return self

    def artifact_for_file(self, file_name: str) -> Artifact | None:
        """The artifact whose file is `file_name`, if the card lists it."""
        for artifact in self.artifacts.values():
            if artifact.file == file_name:
                return artifact
        return None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """Read and validate a card; raises `ValueError` naming the file when it is not one."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read model card {path}: {error.strerror}") from error
        try:
            return cls.model_validate_json(text)
        except ValueError as error:
            raise ValueError(f"{path} is not a valid model card: {error}") from error


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
