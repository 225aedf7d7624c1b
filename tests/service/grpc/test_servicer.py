"""The gRPC server in process, around a model that is still loading: every answer says so
(not ready, UNAVAILABLE, NOT_SERVING), as REST's do (503), until the model is ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from service.grpc.server import GrpcServer
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.subprocess_server import free_port


def test_a_loading_model_is_unavailable_until_it_is_ready(
    make_settings: Callable[..., Settings], model_card: ModelCard
) -> None:
    settings = make_settings(host="127.0.0.1", grpc_port=free_port())
    recognizer = Recognizer(settings)  # not loaded yet
    address = f"127.0.0.1:{settings.grpc_port}"
    tensor = triton_aio.InferInput("images", [1, 784], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, 784), np.uint8))

    async def health() -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            return int(response.status)

    async def scenario() -> None:
        server = GrpcServer(settings, recognizer, share_port=False)
        await server.start()
        client = triton_aio.InferenceServerClient(address)
        try:
            assert await client.is_server_live()
            assert not await client.is_server_ready()
            assert not await client.is_model_ready(model_card.name)
            assert await health() == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(InferenceServerException) as raised:
                await client.infer(model_card.name, [tensor])
            assert raised.value.status() == "StatusCode.UNAVAILABLE"
            assert "still loading" in raised.value.message()
            index = await client.get_model_repository_index(as_json=True)
            assert index["models"] == [
                {
                    "name": model_card.name,
                    "version": model_card.version,
                    "state": "UNAVAILABLE",
                    "reason": "the model is loading",
                }
            ]

            await asyncio.to_thread(recognizer.load)
            assert await client.is_server_ready()
            assert await client.is_model_ready(model_card.name)
            assert await health() == health_pb2.HealthCheckResponse.SERVING
            result = await client.infer(model_card.name, [tensor])
            assert result.as_numpy("digit").shape == (1,)
        finally:
            await client.close()
            await server.stop(grace=1)

    asyncio.run(scenario())
