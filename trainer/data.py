"""Loading MNIST: IDX files (gzipped or raw), a Keras `mnist.npz`, or the Keras download.

Everything here validates before it trusts: magic numbers, declared counts against
the bytes present, image shape, label range, and that images and labels agree.
A bad file raises `ValueError` naming the file. TensorFlow is imported only for the
download, so the loaders are cheap to test.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_ENV_VAR = "DIGITS_MNIST_DATA"
IMAGE_SIZE = 28
NUM_CLASSES = 10
FULL_TRAIN_COUNT = 60_000

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

# Each split's file names, first the canonical ones, then common renamings.
_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass(frozen=True)
class MnistData:
    """Images are uint8 (N, 28, 28), labels uint8 (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    description: str


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from error
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from error
    return raw


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 image file into a uint8 array of shape (N, 28, 28)."""
    data = _read_bytes(path)
    if len(data) < 16:
        raise ValueError(f"{path}: too short for an IDX image header ({len(data)} bytes)")
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IDX_IMAGES_MAGIC:
        raise ValueError(
            f"{path}: magic number {magic:#010x} is not an IDX image file "
            f"({IDX_IMAGES_MAGIC:#010x})"
        )
    if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path}: images are {rows}x{cols}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise ValueError(
            f"{path}: header declares {count} images ({expected} bytes) but the file has "
            f"{len(data)} bytes; truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an IDX1 label file into a uint8 array of shape (N,), checking the 0-9 range."""
    data = _read_bytes(path)
    if len(data) < 8:
        raise ValueError(f"{path}: too short for an IDX label header ({len(data)} bytes)")
    magic, count = struct.unpack(">II", data[:8])
    if magic != IDX_LABELS_MAGIC:
        raise ValueError(
            f"{path}: magic number {magic:#010x} is not an IDX label file "
            f"({IDX_LABELS_MAGIC:#010x})"
        )
    if len(data) != 8 + count:
        raise ValueError(
            f"{path}: header declares {count} labels but the file has {len(data) - 8}; "
            "truncated or corrupt"
        )
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    _check_label_range(labels, str(path))
    return labels


def _check_label_range(labels: np.ndarray, where: str) -> None:
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"{where}: label {int(labels.max())} is outside 0-{NUM_CLASSES - 1}")


def _find_idx_file(folder: Path, key: str) -> Path:
    for stem in _IDX_NAMES[key]:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                return candidate
    names = ", ".join(f"{stem}[.gz]" for stem in _IDX_NAMES[key])
    raise ValueError(f"{folder}: no {key.replace('_', ' ')} file (looked for {names})")


def _paired(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    if len(images) != len(labels):
        raise ValueError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
        )
    if len(images) == 0:
        raise ValueError(f"{images_name} holds no images")


def load_idx_folder(folder: Path) -> MnistData:
    """Load the four MNIST IDX files (gzipped or raw) from `folder`."""
    paths = {key: _find_idx_file(folder, key) for key in _IDX_NAMES}
    arrays = {
        key: read_idx_images(path) if key.endswith("images") else read_idx_labels(path)
        for key, path in paths.items()
    }
    for split in ("train", "test"):
        _paired(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            str(paths[f"{split}_images"]),
            str(paths[f"{split}_labels"]),
        )
    return MnistData(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"],
        source=str(folder),
        description=_describe(
            arrays["train_labels"], arrays["test_labels"], f"IDX files in {folder}"
        ),
    )


def _describe(train_labels: np.ndarray, test_labels: np.ndarray, origin: str) -> str:
    # Accuracy figures must say when they come from less than the full training set.
    subset = (
        f" (a subset of the official {FULL_TRAIN_COUNT:,})"
        if len(train_labels) < FULL_TRAIN_COUNT
        else ""
    )
    return (
        f"MNIST {origin}: {len(train_labels):,} training images{subset}, "
        f"{len(test_labels):,} test images"
    )


def load_npz(path: Path) -> MnistData:
    """Load a Keras-format `mnist.npz` (keys x_train, y_train, x_test, y_test)."""
    required = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an archive")
            arrays = {key: archive[key] for key in required if key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable .npz archive ({error})") from error
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array {missing[0]!r} (need {', '.join(required)})")
    for key in ("x_train", "x_test"):
        array = arrays[key]
        if array.ndim != 3 or array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{path}: {key} has shape {array.shape}, expected (N, 28, 28)")
        if array.dtype != np.uint8:
            raise ValueError(f"{path}: {key} has dtype {array.dtype}, expected uint8")
    for key in ("y_train", "y_test"):
        array = arrays[key]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"{path}: {key} must be a 1-D integer array, got {array.dtype} {array.shape}"
            )
        if array.size and (int(array.min()) < 0 or int(array.max()) >= NUM_CLASSES):
            raise ValueError(f"{path}: {key} has labels outside 0-{NUM_CLASSES - 1}")
    for split in ("train", "test"):
        _paired(
            arrays[f"x_{split}"], arrays[f"y_{split}"], f"{path}:x_{split}", f"{path}:y_{split}"
        )
    return MnistData(
        train_images=arrays["x_train"],
        train_labels=arrays["y_train"].astype(np.uint8),
        test_images=arrays["x_test"],
        test_labels=arrays["y_test"].astype(np.uint8),
        source=str(path),
        description=_describe(arrays["y_train"], arrays["y_test"], f"Keras-format archive {path}"),
    )


def download_with_keras() -> MnistData:
    """The full 60k/10k MNIST through Keras' own download (needs internet)."""
    import keras  # deferred: TensorFlow start-up is slow and the loaders do not need it

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # urllib, SSL, socket and HTTP errors all land here
        raise ValueError(
            "could not download MNIST through keras.datasets.mnist.load_data() "
            f"({type(error).__name__}: {error}). Without internet, pass --data PATH "
            f"(a folder with the four IDX files, or an mnist.npz) or set {DATA_ENV_VAR}."
        ) from error
    return MnistData(
        train_images=x_train,
        train_labels=y_train.astype(np.uint8),
        test_images=x_test,
        test_labels=y_test.astype(np.uint8),
        source="keras.datasets.mnist.load_data()",
        description="full MNIST (60,000 training images) downloaded by Keras",
    )


def load_mnist(data: str | os.PathLike[str] | None = None) -> MnistData:
    """Load MNIST from `data`, else `$DIGITS_MNIST_DATA`, else the Keras download."""
    location = data if data is not None else os.environ.get(DATA_ENV_VAR) or None
    if location is None:
        return download_with_keras()
    path = Path(location)
    if path.is_dir():
        return load_idx_folder(path)
    if path.is_file() and path.suffix == ".npz":
        return load_npz(path)
    if path.is_file():
        raise ValueError(f"{path}: expected a folder of IDX files or a .npz archive")
    raise ValueError(f"{path}: no such file or folder")


def split_validation(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a stratified-by-shuffle validation split off the training data."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(len(images))
    validation_count = max(1, round(len(images) * fraction))
    validation, train = order[:validation_count], order[validation_count:]
    return images[train], labels[train], images[validation], labels[validation]
