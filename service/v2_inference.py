"""The served model as the Open Inference Protocol sees it: metadata, readiness, inference.

The model is named by its card's `name`, with the card's `version` as its one version.
Pixels (UINT8/FP32) go straight to the interpreter; encoded images (BYTES) go through
the same path as `/v1/predict` uploads, limits and preprocessing included.
"""

from __future__ import annotations

import numpy as np
from fastapi import Response

from service import __version__
from service.errors import DigitsError, ModelNotReadyError, UnsupportedMediaTypeError
from service.predictor import Predictor
from service.schemas import ImageInput, ModelInfo, PredictRequest
from service.v2_schemas import MetadataTensor, ModelMetadata, ServerMetadata
from service.v2_tensors import (
    HEADER_LENGTH,
    OUTPUT_DATATYPES,
    TensorError,
    decode_images,
    encode_response,
    read_request,
)

SERVER_NAME = "digits"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "litert_tflite"
INPUT_NAME = "images"


class ModelNotFoundError(DigitsError):
    status_code = 404
    code = "model_not_found"


class OpenInference:
    """Open Inference Protocol answers for the one model a `Predictor` serves."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))

    def is_ready(self) -> bool:
        return self.predictor.state == "ready"

    def model(self, name: str, version: str | None = None) -> ModelInfo:
        """The served model if it is `name` (and `version`); 404 if not, 503 while loading."""
        info = self.predictor.model_info()  # raises ModelNotReadyError while loading
        if name != info.name:
            raise ModelNotFoundError(f"unknown model {name!r}; this server serves {info.name!r}")
        if version is not None and version != info.version:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version!r}; it serves version {info.version!r}"
            )
        return info

    def ready_model(self, name: str, version: str | None = None) -> ModelInfo:
        """`model`, and 503 unless it is ready for traffic (not while draining either)."""
        info = self.model(name, version)
        if not self.is_ready():
            raise ModelNotReadyError(f"the model is {self.predictor.state}")
        return info

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        info = self.model(name, version)
        artifact = self.predictor.describe().served.artifact
        shape = artifact.input.shape if artifact.input is not None else [28, 28, 1]
        return ModelMetadata(
            name=info.name,
            versions=[info.version],
            platform=PLATFORM,
            inputs=[MetadataTensor(name=INPUT_NAME, datatype="FP32", shape=[-1, *shape])],
            outputs=[
                MetadataTensor(name="probabilities", datatype=OUTPUT_DATATYPES["probabilities"],
                               shape=[-1, 10]),
                MetadataTensor(name="digit", datatype=OUTPUT_DATATYPES["digit"], shape=[-1]),
            ],
        )  # fmt: skip

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        header_length: str | None,
        content_encoding: str | None = None,
    ) -> Response:
        info = self.model(name, version)
        if content_encoding not in (None, "", "identity"):
            raise UnsupportedMediaTypeError(
                f"compressed requests (Content-Encoding: {content_encoding}) are not supported"
            )
        request, binary = read_request(body, header_length)
        tensor = request.inputs[0]
        images = decode_images(tensor, binary, self.predictor.settings.max_images)
        if isinstance(images, np.ndarray):
            probabilities = await self.predictor.predict_arrays(images)
        else:
            probabilities = await self._predict_encoded(tensor.name, images)
        content, json_length = encode_response(request, info.name, info.version, probabilities)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(json_length)},
        )

    async def _predict_encoded(self, tensor_name: str, images: list[str]) -> np.ndarray:
        # The same request /v1/predict builds, so decoding limits, the bound on
        # concurrent decodes and the preprocessing are exactly those of /v1. Built
        # without validation: the strings are checked by the decoder, as in /v1.
        request = PredictRequest.model_construct(
            images=[ImageInput.model_construct(data=image, id=None) for image in images],
            top_k=1,
            return_preprocessed=False,
        )
        try:
            response = await self.predictor.predict(request)
        except ModelNotReadyError:
            raise
        except DigitsError as error:
            where = f"element {error.index}: " if error.index is not None else ""
            raise TensorError(f"input {tensor_name!r}: {where}{error.message}") from None
        return np.array([prediction.probabilities for prediction in response.predictions])
