"""Writing IDX files, so tests can build MNIST-format data of their own."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_images_bytes(images: np.ndarray) -> bytes:
    count, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, count, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write(path: Path, payload: bytes, gzipped: bool) -> Path:
    if gzipped:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def write_mnist_folder(
    folder: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    gzipped: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        write(folder / f"{prefix}-images-idx3-ubyte", idx_images_bytes(images), gzipped)
        write(folder / f"{prefix}-labels-idx1-ubyte", idx_labels_bytes(labels), gzipped)
    return folder
