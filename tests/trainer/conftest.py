"""Trainer fixtures: real MNIST when ../shared is beside the repo, else data built here.

`DIGITS_TEST_NO_SHARED=1` makes them behave as if ../shared did not exist (a fresh clone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samples.mnist import SAMPLE_NPZ, shared_mnist
from tests.trainer.idx_files import write_mnist_folder


@pytest.fixture(scope="session")
def mnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the four IDX files.

    The shared offline copy (the 10,000-image subset) when present and allowed;
    otherwise IDX files written from the committed sample of real MNIST test
    digits (never a download): 1,500 training and 500 test images.
    """
    folder = shared_mnist()  # None when absent or hidden by DIGITS_TEST_NO_SHARED=1
    if folder is not None:
        return folder
    with np.load(SAMPLE_NPZ) as sample:
        images, labels = sample["images"], sample["labels"]
    split = len(images) * 3 // 4
    return write_mnist_folder(
        tmp_path_factory.mktemp("mnist"),
        train=(images[:split], labels[:split]),
        test=(images[split:], labels[split:]),
    )
