"""Honest probabilities: quality measures (NLL, ECE) and temperature scaling (numpy only).

Temperature scaling divides the logits by one scalar T > 0 fitted on held-out data
(the validation split) by minimizing the negative log-likelihood. It never changes
which digit wins, only how sure the model says it is. `fold_temperature` moves T
into the final Dense layer (kernel and bias divided by T, before its softmax), so
every exported file is calibrated and the runtime has nothing to apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from service.model_card import ProbabilityQuality

if TYPE_CHECKING:
    import keras

ECE_BINS = 15
_PROBABILITY_FLOOR = 1e-12  # NLL of a probability quantized to 0 stays finite
_MIN_TEMPERATURE, _MAX_TEMPERATURE = 0.01, 100.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    probabilities: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return probabilities


def normalized(probabilities: np.ndarray) -> np.ndarray:
    """As the service returns them: negatives clipped, rows rescaled to sum to 1."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, None)
    result: np.ndarray = clipped / clipped.sum(axis=1, keepdims=True)
    return result


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(true label), in nats."""
    true_class = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.log(np.maximum(true_class, _PROBABILITY_FLOOR)).mean())


@dataclass(frozen=True)
class ReliabilityBins:
    """Per equal-width confidence bin: how many answers, their mean confidence and accuracy."""

    edges: np.ndarray  # (bins + 1,)
    counts: np.ndarray  # (bins,)
    confidence: np.ndarray  # (bins,), NaN where empty
    accuracy: np.ndarray  # (bins,), NaN where empty


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> ReliabilityBins:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (lo, hi]; a confidence of exactly 0 cannot occur for a maximum of 10 classes.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / counts
        mean_accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=bins) / (
            counts
        )
    return ReliabilityBins(edges, counts, mean_confidence, mean_accuracy)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Σ_b (n_b / N) · |accuracy_b − confidence_b| over equal-width bins of the top probability."""
    table = reliability_bins(probabilities, labels, bins)
    filled = table.counts > 0
    gaps = np.abs(table.accuracy[filled] - table.confidence[filled])
    return float((table.counts[filled] * gaps).sum() / table.counts.sum())


def probability_quality(probabilities: np.ndarray, labels: np.ndarray) -> ProbabilityQuality:
    """Accuracy, NLL, ECE and mean confidence (overall, on right and on wrong answers)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    return ProbabilityQuality(
        accuracy=round(float(correct.mean()), 6),
        nll=round(negative_log_likelihood(probabilities, labels), 6),
        ece=round(expected_calibration_error(probabilities, labels), 6),
        mean_confidence=round(float(confidence.mean()), 6),
        mean_confidence_correct=round(float(confidence[correct].mean()), 6)
        if correct.any()
        else None,
        mean_confidence_wrong=round(float(confidence[~correct].mean()), 6)
        if (~correct).any()
        else None,
    )


def _nll_slope(logits: np.ndarray, labels: np.ndarray, inverse_temperature: float) -> float:
    """d NLL / d β at β = 1/T: E_softmax(βz)[z] − z_true, averaged. Increasing in β."""
    probabilities = softmax(logits * inverse_temperature)
    expected = (probabilities * logits).sum(axis=1)
    return float((expected - logits[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 60) -> float:
    """The T minimizing NLL(softmax(logits / T)). NLL is convex in β = 1/T: bisect its slope."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = labels.astype(np.int64)
    low, high = np.log(1 / _MAX_TEMPERATURE), np.log(1 / _MIN_TEMPERATURE)
    if _nll_slope(logits, labels, float(np.exp(low))) >= 0:
        return _MAX_TEMPERATURE
    if _nll_slope(logits, labels, float(np.exp(high))) <= 0:
        return _MIN_TEMPERATURE  # separable data: sharper is always better; cap it
    for _ in range(iterations):
        middle = (low + high) / 2
        if _nll_slope(logits, labels, float(np.exp(middle))) < 0:
            low = middle
        else:
            high = middle
    return float(1 / np.exp((low + high) / 2))


def logits_of(classifier: keras.Model, images: np.ndarray) -> np.ndarray:
    """Pre-softmax outputs: the final Dense layer's affine map on its input features."""
    import keras

    final = classifier.layers[-1]
    features = keras.Model(classifier.inputs, final.input).predict(
        images, batch_size=512, verbose=0
    )
    kernel, bias = final.get_weights()
    result: np.ndarray = features.astype(np.float64) @ kernel + bias
    return result


def fold_temperature(classifier: keras.Model, temperature: float) -> None:
    """Divide the final Dense layer's kernel and bias by T: its softmax then gives softmax(z/T)."""
    final = classifier.layers[-1]
    kernel, bias = final.get_weights()
    final.set_weights([kernel / temperature, bias / temperature])
