"""One LiteRT interpreter with the model's input/output quantization handled.

Used by the service's interpreter pool (service/runtime/pool.py), by the trainer to
measure every exported `.tflite`, and by the benchmarks, so that all three see the same
numbers.
An instance is NOT thread-safe (LiteRT's own rule): give each thread its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from service.model_card import QuantizationParams, TensorSpec

_DTYPE_NAMES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
}


def _tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    dtype = np.dtype(detail["dtype"])
    if dtype not in _DTYPE_NAMES:
        raise ValueError(f"unsupported tensor dtype {dtype} for {detail['name']!r}")
    scale, zero_point = detail["quantization"]
    quantization = QuantizationParams(scale=scale, zero_point=zero_point) if scale else None
    return TensorSpec(
        shape=[int(size) for size in detail["shape"][1:]],
        dtype=_DTYPE_NAMES[dtype],
        quantization=quantization,
    )


class LiteRTModel:
    """Runs float32 images in [0, 1], shaped (N, 28, 28, 1), and returns the model's
    probabilities: (N, 10), or (N, 11) for a model with the not-a-digit output."""

    def __init__(self, model_content: bytes, num_threads: int = 1) -> None:
        self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        input_detail = self._interpreter.get_input_details()[0]
        output_detail = self._interpreter.get_output_details()[0]
        self._input_index: int = input_detail["index"]
        self._output_index: int = output_detail["index"]
        self._input_dtype = np.dtype(input_detail["dtype"])
        self.input_spec = _tensor_spec(input_detail)
        self.output_spec = _tensor_spec(output_detail)
        self._batch_size = int(input_detail["shape"][0])

    @classmethod
    def from_file(cls, path: Path, num_threads: int = 1) -> LiteRTModel:
        return cls(path.read_bytes(), num_threads=num_threads)

    def _resize(self, batch_size: int) -> None:
        # Re-allocation costs about one image's inference; batches run at their exact
        # size (padding would cost whole images), so this runs when the size changes.
        if batch_size != self._batch_size:
            shape = [batch_size, *self.input_spec.shape]
            self._interpreter.resize_tensor_input(self._input_index, shape, strict=False)
            self._interpreter.allocate_tensors()
            self._batch_size = batch_size

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        quantization = self.input_spec.quantization
        if self._input_dtype == np.float32 or quantization is None:
            return images.astype(np.float32, copy=False)
        info = np.iinfo(self._input_dtype)
        scaled = np.rint(images / quantization.scale) + quantization.zero_point
        return np.clip(scaled, info.min, info.max).astype(self._input_dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        quantization = self.output_spec.quantization
        if raw.dtype == np.float32 or quantization is None:
            return raw.astype(np.float32, copy=False)
        probabilities = (raw.astype(np.float32) - quantization.zero_point) * quantization.scale
        # int8 outputs are coarse (steps of 1/256); renormalize so they still sum to 1.
        probabilities = np.clip(probabilities, 0.0, None)
        totals = probabilities.sum(axis=1, keepdims=True)
        uniform = np.full_like(probabilities, 1 / probabilities.shape[1])
        return np.divide(probabilities, totals, out=uniform, where=totals > 0)

    def run(self, images: np.ndarray) -> np.ndarray:
        """One interpreter call for the whole batch."""
        if images.ndim == 3:
            images = images[..., np.newaxis]
        self._resize(len(images))
        self._interpreter.set_tensor(self._input_index, self._quantize(images))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output_index))

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities for any number of images, `batch_size` at a time."""
        if len(images) <= batch_size:
            return self.run(images)
        return np.concatenate(
            [
                self.run(images[start : start + batch_size])
                for start in range(0, len(images), batch_size)
            ]
        )
