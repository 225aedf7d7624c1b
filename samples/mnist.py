"""Where tests find real MNIST: `../shared/data/mnist` beside the checkout, when it is there.

A user's fresh clone has no `../shared`; tests then fall back to the committed sample
(`samples/mnist_test_sample.npz`, 2,000 real test digits). CI runs the suite both
ways: in its checkout (with `../shared`) and in a second clone with nothing beside it.
`DIGITS_TEST_NO_SHARED=1` hides the shared folder without a second clone, so the
fallback can be checked on a developer's machine too.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"
SAMPLE_NPZ = REPO_ROOT / "samples" / "mnist_test_sample.npz"
NO_SHARED_ENV = "DIGITS_TEST_NO_SHARED"


def shared_mnist() -> Path | None:
    """The shared MNIST folder, or None when it is absent or hidden by `DIGITS_TEST_NO_SHARED`."""
    if os.environ.get(NO_SHARED_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return None
    complete = all(
        (SHARED_MNIST / f"{name}-ubyte.gz").is_file()
        for name in (
            "t10k-images-idx3",
            "t10k-labels-idx1",
            "train-images-idx3",
            "train-labels-idx1",
        )
    )
    return SHARED_MNIST if complete else None
