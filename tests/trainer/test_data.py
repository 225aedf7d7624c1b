"""Loaders: IDX (gzipped and raw), npz, and every malformed case named in a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.idx_files import idx_images_bytes, idx_labels_bytes, write, write_mnist_folder
from trainer import data as data_module
from trainer.data import (
    load_idx_folder,
    load_mnist,
    load_npz,
    read_idx_images,
    read_idx_labels,
    split_validation,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
LABELS = np.arange(12, dtype=np.uint8) % 10


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_folder_round_trips(tmp_path: Path, gzipped: bool) -> None:
    write_mnist_folder(tmp_path, (IMAGES, LABELS), (IMAGES[:5], LABELS[:5]), gzipped=gzipped)
    loaded = load_idx_folder(tmp_path)
    np.testing.assert_array_equal(loaded.train_images, IMAGES)
    np.testing.assert_array_equal(loaded.train_labels, LABELS)
    np.testing.assert_array_equal(loaded.test_images, IMAGES[:5])
    assert loaded.source == str(tmp_path)


def test_npz_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(
        path, x_train=IMAGES, y_train=LABELS.astype(np.int64), x_test=IMAGES[:3], y_test=LABELS[:3]
    )
    loaded = load_mnist(path)
    np.testing.assert_array_equal(loaded.train_images, IMAGES)
    assert loaded.train_labels.dtype == np.uint8
    assert len(loaded.test_labels) == 3


def test_real_shared_data_is_read(mnist_folder: Path) -> None:
    loaded = load_idx_folder(mnist_folder)
    assert loaded.test_images.shape[1:] == (28, 28)
    assert set(np.unique(loaded.test_labels)) == set(range(10))


def _file(tmp_path: Path, payload: bytes, name: str = "file-idx", gzipped: bool = False) -> Path:
    return write(tmp_path / name, payload, gzipped)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (idx_labels_bytes(LABELS), "is not an IDX image file"),
        (idx_images_bytes(IMAGES)[:-1], "truncated or corrupt"),
        (idx_images_bytes(IMAGES) + b"\0", "truncated or corrupt"),
        (idx_images_bytes(IMAGES)[:10], "too short"),
        (idx_images_bytes(np.zeros((2, 32, 32), np.uint8)), "images are 32x32"),
    ],
)
def test_malformed_image_files_are_named(tmp_path: Path, payload: bytes, message: str) -> None:
    path = _file(tmp_path, payload)
    with pytest.raises(ValueError, match=message) as error:
        read_idx_images(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (idx_images_bytes(IMAGES), "is not an IDX label file"),
        (idx_labels_bytes(LABELS)[:-2], "truncated or corrupt"),
        (idx_labels_bytes(np.array([1, 2, 10], np.uint8)), "label 10 is outside 0-9"),
        (b"\0\0", "too short"),
    ],
)
def test_malformed_label_files_are_named(tmp_path: Path, payload: bytes, message: str) -> None:
    path = _file(tmp_path, payload)
    with pytest.raises(ValueError, match=message) as error:
        read_idx_labels(path)
    assert str(path) in str(error.value)


def test_truncated_gzip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_images_bytes(IMAGES))[:-20])
    with pytest.raises(ValueError, match="corrupt or truncated gzip") as error:
        read_idx_images(path)
    assert str(path) in str(error.value)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path, (IMAGES, LABELS[:-1]), (IMAGES, LABELS))
    with pytest.raises(ValueError, match=r"has 12 images but .* has 11 labels"):
        load_idx_folder(tmp_path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path, (IMAGES, LABELS), (IMAGES, LABELS))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="no test labels file"):
        load_idx_folder(tmp_path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": IMAGES, "y_train": LABELS, "x_test": IMAGES}, "missing array 'y_test'"),
        (
            {
                "x_train": IMAGES.astype(np.float32),
                "y_train": LABELS,
                "x_test": IMAGES,
                "y_test": LABELS,
            },
            "x_train has dtype float32",
        ),
        (
            {"x_train": IMAGES[:, :20], "y_train": LABELS, "x_test": IMAGES, "y_test": LABELS},
            r"x_train has shape \(12, 20, 28\)",
        ),
        (
            {"x_train": IMAGES, "y_train": LABELS + 5, "x_test": IMAGES, "y_test": LABELS},
            "y_train has labels outside 0-9",
        ),
        (
            {"x_train": IMAGES, "y_train": LABELS[:4], "x_test": IMAGES, "y_test": LABELS},
            r"has 12 images but .* has 4 labels",
        ),
    ],
)
def test_malformed_npz_is_named(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds as `allow_pickle`
    with pytest.raises(ValueError, match=message) as error:
        load_npz(path)
    assert str(path) in str(error.value)


def test_not_an_npz_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        load_npz(path)


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file or folder"):
        load_mnist(tmp_path / "nowhere")


def test_environment_variable_sets_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist_folder(tmp_path, (IMAGES, LABELS), (IMAGES[:4], LABELS[:4]))
    monkeypatch.setenv(data_module.DATA_ENV_VAR, str(tmp_path))
    assert len(load_mnist().test_labels) == 4


def test_failed_download_names_the_data_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, Keras' download raises; the message must tell the user what to do instead."""
    import keras

    def offline() -> None:
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: Name or service not known"
        )

    monkeypatch.delenv(data_module.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(ValueError, match="--data") as error:
        load_mnist()
    assert data_module.DATA_ENV_VAR in str(error.value)


def test_validation_split_is_disjoint_and_seeded() -> None:
    images = np.arange(100 * 28 * 28, dtype=np.uint32).reshape(100, 28, 28).astype(np.uint8)
    labels = np.arange(100, dtype=np.uint8) % 10
    first = split_validation(images, labels, 0.1, seed=3)
    again = split_validation(images, labels, 0.1, seed=3)
    assert len(first[0]) == 90 and len(first[2]) == 10
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left, right)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_validation(images, labels, 1.5, seed=3)
