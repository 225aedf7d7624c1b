"""Calibration maths on synthetic data: NLL, ECE, the temperature fit and folding T into a layer."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.calibrate import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    normalized,
    probability_quality,
    reliability_bins,
    softmax,
)


def sampled_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from the probabilities themselves: a perfectly calibrated model."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random((len(probabilities), 1))
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def test_softmax_with_temperature() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [1000.0, 0.0, -1000.0]])
    probabilities = softmax(logits, temperature=2.0)
    expected = np.exp([1.0, 0.5, 0.0]) / np.exp([1.0, 0.5, 0.0]).sum()
    np.testing.assert_allclose(probabilities[0], expected)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert np.isfinite(probabilities).all()  # no overflow on large logits


def test_negative_log_likelihood_and_a_zero_probability() -> None:
    probabilities = np.array([[0.5, 0.5], [0.25, 0.75]])
    labels = np.array([0, 1])
    assert negative_log_likelihood(probabilities, labels) == pytest.approx(
        -(np.log(0.5) + np.log(0.75)) / 2
    )
    # An int8 output can round the true class to exactly 0: large but finite.
    assert np.isfinite(negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])))


def test_expected_calibration_error_by_hand() -> None:
    # Two answers at confidence 0.9 (one right), two at 0.6 (both right):
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    table = reliability_bins(probabilities, labels)
    assert table.counts.sum() == 4 and len(table.edges) == 16
    filled = table.counts > 0
    np.testing.assert_allclose(table.confidence[filled], [0.6, 0.9])
    np.testing.assert_allclose(table.accuracy[filled], [1.0, 0.5])


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_one() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 10))
    labels = sampled_labels(softmax(logits), rng)
    assert expected_calibration_error(softmax(logits), labels) < 0.015
    assert expected_calibration_error(softmax(logits, temperature=0.3), labels) > 0.1


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(true_temperature: float) -> None:
    # Labels drawn from softmax(z / T): the NLL-optimal temperature for logits z is T.
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (30_000, 10))
    labels = sampled_labels(softmax(logits, true_temperature), rng)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    best = negative_log_likelihood(softmax(logits, fitted), labels)
    for other in (fitted * 0.9, fitted * 1.1):
        assert best < negative_log_likelihood(softmax(logits, other), labels)


def test_the_fit_is_bounded_on_separable_data() -> None:
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert fit_temperature(logits, np.array([0, 1])) == pytest.approx(0.01)


def test_probability_quality_splits_confidence_by_correctness() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    quality = probability_quality(probabilities, np.array([0, 1, 1]))
    assert quality.accuracy == pytest.approx(2 / 3, abs=1e-6)
    assert quality.mean_confidence_correct == pytest.approx(0.8)
    assert quality.mean_confidence_wrong == pytest.approx(0.8)
    perfect = probability_quality(probabilities[:1], np.array([0]))
    assert perfect.mean_confidence_wrong is None


def test_normalized_is_what_the_service_returns() -> None:
    raw = np.array([[0.5, 0.3, -0.01], [0.0, 0.2, 0.2]])
    np.testing.assert_allclose(normalized(raw), [[0.625, 0.375, 0.0], [0.0, 0.5, 0.5]])


def test_folding_the_temperature_into_the_final_layer_gives_softmax_of_logits_over_t() -> None:
    import keras

    from trainer.calibrate import fold_temperature, logits_of

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    inputs = np.random.default_rng(4).normal(size=(32, 6)).astype(np.float32)
    logits = logits_of(model, inputs)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), softmax(logits), atol=1e-6)
    fold_temperature(model, 2.5)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), softmax(logits, 2.5), atol=1e-6)
    np.testing.assert_allclose(logits_of(model, inputs), logits / 2.5, rtol=1e-5, atol=1e-6)
