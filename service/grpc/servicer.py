"""`inference.GRPCInferenceService` over the `OpenInference` dataplane, the API key check,
and `grpc.health.v1` answering what `/readyz` answers.

Handlers are registered by hand under the protocol's service name rather than through a
generated `_pb2_grpc` module: the proto's package is `digits.inference`
(service/grpc/proto/grpc_predict_v2.proto says why), and typed handlers read better.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import grpc
from grpc_health.v1 import health, health_pb2
from pydantic import SecretStr

from service.errors import DigitsError, ModelNotReadyError
from service.gateway.table import GRPC_OPEN_METHODS, GRPC_SERVICE
from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.grpc.tensors import infer_request, infer_response, status_code_of
from service.grpc.wire import read_infer_request
from service.v2.dataplane import OpenInference
from service.v2.outputs import model_outputs
from service.web.api_key import presented_key, refusal_for
from service.web.bounds import clip

logger = logging.getLogger(__name__)

SERVICE = GRPC_SERVICE
# Most values (service/grpc/wire.py counts them) of a request converted on the event loop:
# ~1 ms of typed pixels, about 20 images; more go to a worker thread.
INLINE_VALUES = 16_384

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class InferenceServicer:
    """The protocol's RPCs; a `DigitsError` ends the call with its status code."""

    def __init__(self, inference: OpenInference) -> None:
        self.inference = inference

    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.inference.is_ready())

    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        try:
            self.inference.model(request.name, request.version or None)
        except ModelNotReadyError:  # loading: not ready, which is an answer, not an error
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.inference.is_ready())

    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Any) -> Any:
        return pb.ServerMetadataResponse(**self.inference.server_metadata().model_dump())

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Any) -> Any:
        metadata = self.inference.metadata(request.name, request.version or None)
        # The protocol's message has no `parameters` (the limits REST publishes there).
        return pb.ModelMetadataResponse(**metadata.model_dump(exclude={"parameters"}))

    async def model_infer(self, data: bytes, context: Any) -> Any:
        """Takes the message's bytes (it is registered without a deserializer): they are
        counted before they are parsed (service/grpc/wire.py)."""
        limits = self.inference.recognizer.limits
        request, values = read_infer_request(data, limits)
        card = self.inference.model(request.model_name, request.model_version or None)
        outputs = model_outputs(card)
        if values <= INLINE_VALUES:
            parsed, binary = infer_request(request, outputs, limits)
        else:  # typed contents of many images: ~40 ns a value to convert, off the loop
            parsed, binary = await anyio.to_thread.run_sync(infer_request, request, outputs, limits)
        return infer_response(parsed, card, await self.inference.predict(parsed, binary))

    async def repository_index(self, request: pb.RepositoryIndexRequest, context: Any) -> Any:
        models = self.inference.repository_index(ready_only=request.ready)
        return pb.RepositoryIndexResponse(models=[model.model_dump() for model in models])

    async def repository_load(self, request: pb.RepositoryModelLoadRequest, context: Any) -> Any:
        # The refusal quotes the name: cut as errors cut client text (service/web/bounds.py).
        self.inference.refuse_repository_change("load", clip(request.model_name))

    async def repository_unload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> Any:
        self.inference.refuse_repository_change("unload", clip(request.model_name))

    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Handler, Any]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, None),  # bytes: model_infer reads them
            "RepositoryIndex": (self.repository_index, pb.RepositoryIndexRequest),
            "RepositoryModelLoad": (self.repository_load, pb.RepositoryModelLoadRequest),
            "RepositoryModelUnload": (self.repository_unload, pb.RepositoryModelUnloadRequest),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    _answering_errors(method),
                    request_deserializer=message.FromString if message else None,
                    response_serializer=message_bytes,
                )
                for name, (method, message) in methods.items()
            },
        )


def message_bytes(message: Any) -> bytes:
    serialized: bytes = message.SerializeToString()
    return serialized


def _answering_errors(method: Handler) -> Handler:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request, context)
        except DigitsError as error:
            await context.abort(status_code_of(error), error.message)
        except Exception:
            # grpc's own answer would carry the exception's text; the log gets the details.
            logger.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return call


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED unless the call's metadata carries the key (as REST's headers do:
    `authorization: Bearer <key>` or `x-api-key: <key>`); health and liveness stay open."""

    def __init__(self, api_key: SecretStr) -> None:
        self._key = api_key.get_secret_value().encode()

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method in GRPC_OPEN_METHODS:  # the table of operations says which
            return await continuation(details)
        metadata = [
            (key.encode(), value if isinstance(value, bytes) else value.encode())
            for key, value in details.invocation_metadata or ()
        ]
        refusal = refusal_for(presented_key(metadata), self._key)
        if refusal is None:
            return await continuation(details)
        message = f"{refusal}: send metadata 'authorization: Bearer <key>' or 'x-api-key: <key>'"

        async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        return grpc.unary_unary_rpc_method_handler(refuse)


class ReadinessHealth(health.aio.HealthServicer):
    """`grpc.health.v1`: SERVING exactly when REST's `/readyz` is 200 — for the server
    (service "") and for `inference.GRPCInferenceService` — NOT_SERVING while the model
    loads or the server drains, as `grpc_health_probe` and Kubernetes gRPC probes check."""

    def __init__(self, is_ready: Callable[[], bool]) -> None:
        super().__init__()
        self.is_ready = is_ready

    async def refresh(self) -> None:
        """Brings the statuses up to date; `Watch` streams see a change once this runs."""
        status = health_pb2.HealthCheckResponse.SERVING
        if not self.is_ready():
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", SERVICE):
            await self.set(service, status)

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 (grpc's name)
        await self.refresh()
        return await super().Check(request, context)

    async def Watch(self, request: Any, context: Any) -> None:  # noqa: N802
        await self.refresh()
        await super().Watch(request, context)
