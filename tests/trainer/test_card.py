"""Choosing the serving default from measured figures."""

from __future__ import annotations

from service.model_card import LatencyMeasurement, TensorSpec
from trainer.card import Measurement, choose_serving_default

SPEC = TensorSpec(shape=[28, 28, 1], dtype="float32")


def measured(accuracy: float, single_us: float, batch_per_s: float) -> Measurement:
    latency = LatencyMeasurement(
        single_image_us=single_us, batch256_images_per_s=batch_per_s, machine="Test CPU (avx2)"
    )
    return SPEC, SPEC, accuracy, latency


def test_fastest_variant_within_the_margin_wins() -> None:
    chosen, reason = choose_serving_default(
        {"int8": measured(0.9920, 120, 9000), "dynamic": measured(0.9921, 70, 12000)}, 0.9922, 0.1
    )
    assert chosen == "dynamic"
    assert "70 µs" in reason and "120 µs" in reason
    assert "Test CPU (avx2)" in reason  # the choice depends on the CPU: the reason names it


def test_a_faster_variant_outside_the_margin_loses() -> None:
    chosen, _ = choose_serving_default(
        {"int8": measured(0.9900, 50, 20000), "dynamic": measured(0.9921, 70, 12000)}, 0.9922, 0.1
    )
    assert chosen == "dynamic"


def test_when_none_is_within_the_margin_the_most_accurate_serves() -> None:
    chosen, reason = choose_serving_default(
        {"int8": measured(0.9850, 50, 20000), "dynamic": measured(0.9870, 70, 12000)}, 0.9922, 0.1
    )
    assert chosen == "dynamic"
    assert "no quantized variant" in reason
