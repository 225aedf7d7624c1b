"""Trainer fixtures: real MNIST when ../shared is beside the repo, else data built here.

`DIGITS_TEST_NO_SHARED=1` makes them behave as if ../shared did not exist (a fresh clone).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.idx_files import write_mnist_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"
SAMPLE = REPO_ROOT / "samples" / "mnist_test_sample.npz"
NO_SHARED_ENV_VAR = "DIGITS_TEST_NO_SHARED"


def shared_data_allowed() -> bool:
    return not os.environ.get(NO_SHARED_ENV_VAR)


@pytest.fixture(scope="session")
def mnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the four IDX files.

    The shared offline copy (the 10,000-image subset) when present and allowed;
    otherwise IDX files written from the committed sample of real MNIST test
    digits (never a download): 1,500 training and 500 test images.
    """
    if shared_data_allowed() and (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return SHARED_MNIST
    with np.load(SAMPLE) as sample:
        images, labels = sample["images"], sample["labels"]
    split = len(images) * 3 // 4
    return write_mnist_folder(
        tmp_path_factory.mktemp("mnist"),
        train=(images[:split], labels[:split]),
        test=(images[split:], labels[split:]),
    )
