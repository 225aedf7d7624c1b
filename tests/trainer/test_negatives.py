"""The generated non-digits: reproducible, of every kind, shaped like what the model sees."""

from __future__ import annotations

import numpy as np
import pytest

from samples.uploads import load_test_digits
from trainer.negatives import (
    HELD_OUT_NPZ,
    HELD_OUT_PER_KIND,
    KINDS,
    generate,
    held_out,
    make_negative,
    model_input,
)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images, _ = load_test_digits(200)
    return images


def test_same_seed_same_images_other_seed_other_images(digits: np.ndarray) -> None:
    first, kinds = generate(70, 7, digits)
    again, _ = generate(70, 7, digits)
    other, _ = generate(70, 8, digits)
    assert first.shape == (70, 28, 28) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.bincount(kinds, minlength=len(KINDS)).tolist() == [10] * len(KINDS)
    assert first.min() >= 0 and first.max() <= 1


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_something_the_model_can_see(kind: str, digits: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    seen = [model_input(make_negative(kind, rng, digits)) for _ in range(20)]
    shown = [pixels for pixels in seen if pixels is not None]
    assert shown, f"every {kind} upload was refused as blank"
    for pixels in shown:
        assert pixels.shape == (28, 28) and pixels.dtype == np.float32


def test_unknown_kind_is_refused(digits: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown kind 'faces'"):
        make_negative("faces", np.random.default_rng(0), digits)


def test_committed_held_out_set_is_what_the_generator_draws() -> None:
    """The file is the generator's output, not hand-picked: drawing it again (as an
    installed package without samples/ does) gives the same pixels."""
    assert HELD_OUT_NPZ.is_file()
    images, kinds = held_out(np.zeros((0, 28, 28), np.uint8))
    assert images.shape == (HELD_OUT_PER_KIND * len(KINDS), 28, 28)
    from trainer.negatives import _draw_held_out

    sample, _ = load_test_digits(2000)
    drawn, drawn_kinds = _draw_held_out(sample)
    np.testing.assert_array_equal(kinds, drawn_kinds)
    np.testing.assert_allclose(images, np.round(drawn * 255) / 255, atol=1e-6)
