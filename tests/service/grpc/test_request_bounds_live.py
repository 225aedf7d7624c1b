"""Hostile ModelInfer messages against a real server (one worker, as in deploy/k8s), as
tests/service/web/test_body_bounds_live.py sends hostile bodies to REST (issue 24, items 1
and 4): each is refused, the process's peak memory grows by a small multiple of the message
at most, `/healthz` stays prompt meanwhile, and what comes back is bounded as REST's is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import grpc
import numpy as np
import pytest

from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.model_card import ModelCard
from tests.subprocess_server import (
    ServerProcess,
    free_port,
    measured_while,
    server_process,
)

MIB = 1024 * 1024
METHOD = "/inference.GRPCInferenceService/"
HEALTHZ_MAX_SECONDS = 1.0  # as for REST, with room for a loaded CI machine


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerProcess, str]]:
    port = free_port()
    with server_process({"DIGITS_GRPC_PORT": str(port), "DIGITS_WORKERS": "1"}) as running:
        yield running, f"127.0.0.1:{port}"


class _Answer(NamedTuple):
    code: grpc.StatusCode
    details: str
    response: bytes | None


def _call(address: str, method: str, message: bytes) -> _Answer:
    """One call, as bytes; gRPC's default client options (8 KiB of metadata at most, so an
    error's details must be shorter to be read at all)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD + method)
        try:
            return _Answer(grpc.StatusCode.OK, "", call(message, timeout=60))
        except grpc.RpcError as error:
            return _Answer(error.code(), error.details() or "", None)


def _infer(model_card: ModelCard, shape: list[int], **tensor: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model_card.name)
    request.inputs.add(name="images", datatype="UINT8", shape=shape, **tensor)
    return request


def _typed_values(model_card: ModelCard) -> bytes:
    # The message: 30 M one-byte values for one image (30 MB; +740 MiB and a 3 s
    # stall before, and the memory was kept).
    request = _infer(model_card, [1, 28, 28])
    request.inputs[0].contents.uint_contents.extend(np.zeros(30_000_000, np.uint32))
    return request.SerializeToString()


def _empty_inputs(model_card: ModelCard) -> bytes:
    # 10 M empty input tensors (20 MB): parsing alone built ~0.9 GiB of messages before.
    return pb.ModelInferRequest(model_name=model_card.name).SerializeToString() + b"\x2a\x00" * (
        10_000_000
    )


@pytest.mark.parametrize("message", [_typed_values, _empty_inputs])
def test_messages_holding_more_than_any_valid_request_are_refused_unparsed(
    server: tuple[ServerProcess, str],
    model_card: ModelCard,
    message: Callable[[ModelCard], bytes],
) -> None:
    process, address = server
    body = message(model_card)
    measured = measured_while(process, lambda: _call(address, "ModelInfer", body))
    growth_mib = measured.peak_growth / MIB
    # Receiving a message costs about three times its size (gRPC's buffers, then bytes).
    assert measured.peak_growth < 4 * len(body) + 24 * MIB, f"peak RSS +{growth_mib:.0f} MiB"
    assert measured.slowest_healthz < HEALTHZ_MAX_SECONDS, measured.slowest_healthz
    assert measured.answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED, measured.answer
    assert "more than a valid request of at most 256 images" in measured.answer.details


def test_typed_contents_are_counted_against_the_shape_and_the_limits(
    server: tuple[ServerProcess, str], model_card: ModelCard
) -> None:
    """Within the bounds, contents that do not fit the declared shape are refused by their
    count, naming the input and the field, before any is converted."""
    address = server[1]
    short = _infer(model_card, [2, 784], contents=pb.InferTensorContents(uint_contents=[0] * 784))
    answer = _call(address, "ModelInfer", short.SerializeToString())
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    assert (
        answer.details
        == "input 'images': shape [2, 784] holds 1568 elements, uint_contents has 784"
    )
    many = _infer(model_card, [257, 784], contents=pb.InferTensorContents(uint_contents=[0]))
    answer = _call(address, "ModelInfer", many.SerializeToString())
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    assert answer.details == "input 'images': at most 256 images per request, got 257"
    # 64 images of typed pixels are converted off the event loop, and answered.
    pixels = pb.InferTensorContents(uint_contents=np.zeros(64 * 784, np.uint32))
    batch = _infer(model_card, [64, 784], contents=pixels)
    answer = _call(address, "ModelInfer", batch.SerializeToString())
    assert answer.code == grpc.StatusCode.OK, answer
    assert answer.response is not None
    digit = pb.ModelInferResponse.FromString(answer.response).outputs[1]
    assert (digit.name, list(digit.shape)) == ("digit", [64])


def _raw_pixels(
    model_card: ModelCard, *, request_id: str = "", name: str = "images", output: str | None = None
) -> bytes:
    """A request for one image of raw UINT8 pixels, shaped [1, 28] unless named "images"
    (so that a long name is quoted in the shape's refusal, as it was before)."""
    shape = [1, 784] if name == "images" else [1, 28]
    request = _infer(model_card, shape)
    request.id, request.inputs[0].name = request_id, name
    request.raw_input_contents.append(bytes(784 if name == "images" else 28))
    if output is not None:
        request.outputs.add(name=output)
    return request.SerializeToString()


def test_ids_and_names_have_rest_bounds_and_errors_quote_little(
    server: tuple[ServerProcess, str], model_card: ModelCard
) -> None:
    address = server[1]
    huge = "n" * MIB
    requests = {
        # Before: the id echoed in a 200 (20 MB); the input's and the output's names in full
        # in the error details, more than a client's 8 KiB of metadata can read.
        "id": _raw_pixels(model_card, request_id="i" * 20 * MIB),
        "inputs.0.name": _raw_pixels(model_card, name=huge),
        "outputs.0.name": _raw_pixels(model_card, output=huge),
    }
    for where, request in requests.items():
        answer = _call(address, "ModelInfer", request)
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (where, answer.code)
        # REST's words (service/v2/codec.py), from the same schema.
        assert answer.details == (
            f"invalid inference request: {where}: String should have at most 256 characters"
        )
    load = pb.RepositoryModelLoadRequest(model_name=huge).SerializeToString()
    answer = _call(address, "RepositoryModelLoad", load)
    assert answer.code == grpc.StatusCode.UNIMPLEMENTED, answer.code
    assert len(answer.details) < 1024

    # The longest id REST takes is echoed, as over REST.
    answer = _call(address, "ModelInfer", _raw_pixels(model_card, request_id="i" * 256))
    assert answer.response is not None, answer
    assert pb.ModelInferResponse.FromString(answer.response).id == "i" * 256
