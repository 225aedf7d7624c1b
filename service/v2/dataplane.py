"""The served model as the Open Inference Protocol sees it: metadata, readiness, inference.

The model is named by its card's `name`, with the card's `version` as its one version.
Pixels (UINT8/FP32) go straight to the interpreter; encoded images (BYTES) go through
the same path as `/v1/predict` uploads, limits and preprocessing included.
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

import numpy as np

from service import __version__
from service.errors import DigitsError, ModelNotReadyError
from service.model_card import IMAGE_SIDE, ModelCard
from service.runtime.recognizer import Recognizer
from service.runtime.scores import Scores
from service.v2.codec import (
    EncodedImage,
    TensorError,
    decode_images,
    image_bytes,
    max_json_values,
    not_a_digit_threshold,
    read_request,
    split_body,
)
from service.v2.outputs import encode_response, model_outputs, output_metadata, output_tensors
from service.v2.schemas import (
    InferRequest,
    MetadataTensor,
    ModelMetadata,
    RepositoryModel,
    RequestInput,
    ServerMetadata,
)
from service.web.bounds import clip, echo
from service.web.errors import ModelNotFoundError, NotSupportedError, UnsupportedMediaTypeError
from service.web.json_body import JsonBodyError, check_json_body_async

SERVER_NAME = "digits"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "litert_tflite"
INPUT_NAME = "images"


class InferAnswer(NamedTuple):
    """An inference response body: JSON, or (`json_length` set) the binary tensor data
    extension's JSON header of that many bytes followed by the raw output tensors."""

    content: bytes
    json_length: int | None


class OpenInference:
    """Open Inference Protocol answers for the one model a `Recognizer` serves."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))

    def is_ready(self) -> bool:
        return self.recognizer.state == "ready"

    def model(self, name: str, version: str | None = None) -> ModelCard:
        """The served model if it is `name` (and `version`); 404 if not, 503 while loading."""
        card = self.recognizer.model.card  # raises ModelNotReadyError while loading
        if name != card.name:
            raise ModelNotFoundError(
                f"unknown model {echo(name)}; this server serves {card.name!r}"
            )
        if version is not None and version != card.version:
            raise ModelNotFoundError(
                f"model {echo(name)} has no version {echo(version)}; "
                f"it serves version {card.version!r}"
            )
        return card

    def ready_model(self, name: str, version: str | None = None) -> ModelCard:
        """`model`, and 503 unless it is ready for traffic (not while draining either)."""
        info = self.model(name, version)
        if not self.is_ready():
            raise ModelNotReadyError(f"the model is {self.recognizer.state}")
        return info

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        info = self.model(name, version)
        artifact = self.recognizer.model.artifact
        shape = artifact.input.shape if artifact.input is not None else [IMAGE_SIDE, IMAGE_SIDE, 1]
        return ModelMetadata(
            name=info.name,
            versions=[info.version],
            platform=PLATFORM,
            inputs=[MetadataTensor(name=INPUT_NAME, datatype="FP32", shape=[-1, *shape])],
            outputs=output_metadata(info),
            parameters=self.recognizer.limits,
        )

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        header_length: str | None,
        content_encoding: str | None = None,
    ) -> InferAnswer:
        """The answer to an inference request's body, as bytes for the endpoint to send."""
        info = self.model(name, version)
        if content_encoding not in (None, "", "identity"):
            raise UnsupportedMediaTypeError(
                f"compressed requests (Content-Encoding: {clip(content_encoding)}) "
                "are not supported"
            )
        max_images = self.recognizer.settings.max_images
        header, binary = split_body(body, header_length)
        try:
            # No more values than a request of `max_images` images holds, before any is built.
            text = await check_json_body_async(header, max_json_values(max_images))
        except JsonBodyError as error:
            raise TensorError(f"the inference request is refused: {error}") from None
        request, data = read_request(text, binary, model_outputs(info))
        tensors = await self.predict(request, data)
        content, json_length = encode_response(request, info.name, info.version, tensors)
        return InferAnswer(content, json_length)

    async def predict(self, request: InferRequest, binary: bytes | None) -> dict[str, np.ndarray]:
        """Every output tensor of the model, by name, for a checked request (its input's
        `binary` data, if any), whichever the protocol (REST above, gRPC in service/grpc)
        that carried it."""
        scores = await self.score(request.inputs[0], binary)
        default = self.recognizer.settings.not_a_digit_threshold
        return output_tensors(scores, not_a_digit_threshold(request.parameters, default=default))

    async def score(self, tensor: RequestInput, binary: bytes | None) -> Scores:
        """What the model says of the images of an input tensor. Pixels go to the model as
        they are, blank or constant ones too: a model with the not-a-digit output answers
        those itself (trained on them), and /v1's refusal of blank uploads is about files."""
        images = decode_images(tensor, binary, self.recognizer.limits)
        if isinstance(images, np.ndarray):
            return await self.recognizer.score_async(images)
        return await self._recognize(tensor.name, images)

    def repository_index(self, ready_only: bool = False) -> list[RepositoryModel]:
        """The model repository: the one model, READY or UNAVAILABLE with the reason."""
        try:
            card = self.recognizer.model.card
        except ModelNotReadyError:
            try:  # still loading, or failed: its card still names it
                card = ModelCard.load(self.recognizer.settings.model_card_path())
            except Exception:
                return []  # nothing to name: the card itself is unreadable
        state = self.recognizer.state
        if state == "ready":
            entry = RepositoryModel(name=card.name, version=card.version, state="READY")
        elif ready_only:
            return []
        else:
            reason = self.recognizer.failure if state == "failed" else f"the model is {state}"
            entry = RepositoryModel(
                name=card.name, version=card.version, state="UNAVAILABLE", reason=reason or ""
            )
        return [entry]

    def refuse_repository_change(self, action: str, name: str) -> NoReturn:
        """Loading and unloading: this server serves one model, chosen when it starts."""
        raise NotSupportedError(
            f"cannot {action} model {echo(name)}: this server does not support loading or "
            "unloading models; it serves the one model it started with (DIGITS_MODEL_CARD)"
        )

    async def _recognize(self, tensor_name: str, images: list[EncodedImage]) -> Scores:
        # The runtime call /v1/predict makes, so decoding limits, the bound on concurrent
        # decodes and the preprocessing are exactly those of /v1.
        try:
            _, probabilities, not_a_digit = await self.recognizer.recognize_async(
                images, image_bytes
            )
            return Scores(probabilities, not_a_digit)
        except ModelNotReadyError:
            raise
        except DigitsError as error:
            where = f"element {error.index}: " if error.index is not None else ""
            raise TensorError(f"input {tensor_name!r}: {where}{error.message}") from None
