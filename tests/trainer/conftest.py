"""Trainer fixtures: real MNIST when ../shared is beside the repo, else data built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.trainer.idx_files import write_mnist_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"
SAMPLE = REPO_ROOT / "tests" / "data" / "mnist_test_sample.npz"


@pytest.fixture(scope="session")
def mnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the four IDX files.

    The shared offline copy when present; otherwise IDX files written from the
    committed sample of real MNIST test digits (never a download).
    """
    if (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return SHARED_MNIST
    with np.load(SAMPLE) as sample:
        images, labels = sample["images"], sample["labels"]
    split = len(images) * 3 // 4
    return write_mnist_folder(
        tmp_path_factory.mktemp("mnist"),
        train=(images[:split], labels[:split]),
        test=(images[split:], labels[split:]),
    )
