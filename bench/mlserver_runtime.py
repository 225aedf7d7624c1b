"""The MLServer peer: a custom runtime running the served .tflite in LiteRT, MLServer 1.7.

The Open Inference Protocol (V2) over REST, MLServer's way: an `mlserver.MLModel`
subclass whose `load` opens one LiteRT interpreter per inference worker and whose
`predict` takes one BYTES input tensor of N base64 PNGs (`Base64Codec`, the codec the
protocol's `content_type: base64` names) and answers an FP32 tensor [N, 10] of
probabilities (`NumpyCodec`). The preprocessing is the service's own function,
`service.imaging.preprocess.preprocess_image` (numpy + Pillow only), imported from this
checkout on PYTHONPATH. Runs in its own venv (bench/.venv-mlserver), configured by
environment (MLServer reads MLSERVER_* and MLSERVER_MODEL_*; bench/contenders.py sets
them):

    MLSERVER_MODEL_IMPLEMENTATION=bench.mlserver_runtime.DigitsRuntime \\
    MLSERVER_MODEL_NAME=digits MLSERVER_MODEL_URI=model.tflite mlserver start EMPTY_DIR
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import Base64Codec, NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from service.imaging.preprocess import preprocess_image


class DigitsRuntime(MLModel):
    """LiteRT on one thread per inference worker; a request's images are one invoke."""

    async def load(self) -> bool:
        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("MLSERVER_MODEL_URI must name the .tflite file")
        self._interpreter = Interpreter(model_path=uri, num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 1
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = self.decode(payload.inputs[0], default_codec=Base64Codec)
        pixels = np.stack([preprocess_image(image) for image in images])[..., np.newaxis]
        if len(images) != self._batch:  # resizing costs a re-allocation: only on change
            self._interpreter.resize_tensor_input(self._input, list(pixels.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(images)
        self._interpreter.set_tensor(self._input, pixels)
        self._interpreter.invoke()
        probabilities = self._interpreter.get_tensor(self._output)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output("probabilities", probabilities)],
        )
