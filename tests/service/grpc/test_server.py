"""NVIDIA's gRPC client (`tritonclient.grpc`) and a `grpc_health_probe`-style health check
against a real `python -m service` with `DIGITS_GRPC_PORT` set (and an API key)."""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from samples.uploads import encode_png, load_test_digits
from service.model_card import ModelCard
from tests.subprocess_server import ServerProcess, free_port, server_process

KEY = "grpc-test-key"
AUTH = {"x-api-key": KEY}
COUNT = 256  # real MNIST test digits: the most one request may carry (DIGITS_MAX_IMAGES)


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[tuple[ServerProcess, str]]:
    port = free_port()
    env = {"DIGITS_GRPC_PORT": str(port), "DIGITS_WORKERS": "1", "DIGITS_API_KEY": KEY}
    with server_process(env) as server:
        yield server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(grpc_server: tuple[ServerProcess, str]) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(grpc_server[1]) as grpc_client:
        yield grpc_client


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(COUNT)


def _health(address: str, service: str = "") -> int:
    """What `grpc_health_probe -addr=<address> [-service=<service>]` asks."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return status


def _raised(call: Callable[[], object]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return raised.value


def test_health_liveness_and_metadata(
    client: triton.InferenceServerClient, model_card: ModelCard
) -> None:
    assert client.is_server_live() and client.is_server_ready()  # open, like /v2/health
    assert client.is_model_ready(model_card.name, headers=AUTH)
    assert client.is_model_ready(model_card.name, model_card.version, headers=AUTH)
    server = client.get_server_metadata(headers=AUTH, as_json=True)
    assert server["name"] == "digits" and "extensions" in server
    metadata = client.get_model_metadata(model_card.name, headers=AUTH, as_json=True)
    assert metadata["versions"] == [model_card.version]
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("images", "FP32")]
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]}
    expected = {"probabilities": ("FP32", ["-1", "10"]), "digit": ("INT64", ["-1"])}
    if model_card.not_a_digit is not None:
        expected |= {"not_a_digit": ("FP32", ["-1", "1"]), "is_digit": ("BOOL", ["-1", "1"])}
    assert outputs == expected


def test_grpc_health_checking_protocol(grpc_server: tuple[ServerProcess, str]) -> None:
    address = grpc_server[1]
    serving = health_pb2.HealthCheckResponse.SERVING
    assert _health(address) == serving  # no key needed: probes carry none
    assert _health(address, "inference.GRPCInferenceService") == serving
    with pytest.raises(grpc.RpcError) as unknown:
        _health(address, "no.such.Service")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("datatype", "shape"), [("UINT8", (28, 28)), ("FP32", (784,))])
def test_infer_numpy_batch(
    client: triton.InferenceServerClient,
    model_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
    datatype: str,
    shape: tuple[int, ...],
) -> None:
    images, labels = digits
    batch = images.reshape(len(images), *shape)
    if datatype == "FP32":
        batch = batch.astype(np.float32) / 255
    tensor = triton.InferInput("images", list(batch.shape), datatype)
    tensor.set_data_from_numpy(batch)  # sent as raw_input_contents

    result = client.infer(model_card.name, [tensor], request_id="g-1", headers=AUTH)

    found, probabilities = result.as_numpy("digit"), result.as_numpy("probabilities")
    assert found.dtype == np.int64 and probabilities.shape == (COUNT, 10)
    assert result.get_response().id == "g-1"
    assert result.get_response().model_version == model_card.version
    np.testing.assert_array_equal(found, probabilities.argmax(axis=1))
    # The committed model scores ~99 % on MNIST's test split.
    assert (found == labels).mean() >= 0.97


def test_infer_png_files_and_chosen_outputs(
    client: triton.InferenceServerClient,
    model_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = digits
    files = np.array([encode_png(image) for image in images[:32]], dtype=np.object_)
    tensor = triton.InferInput("png", [32], "BYTES")
    tensor.set_data_from_numpy(files)
    wanted = [triton.InferRequestedOutput("digit")]
    result = client.infer(model_card.name, [tensor], outputs=wanted, headers=AUTH)
    assert (result.as_numpy("digit") == labels[:32]).mean() >= 0.9
    assert result.as_numpy("probabilities") is None  # not requested, not sent


def test_not_a_digit_outputs_blank_tensors_and_the_threshold_parameter(
    client: triton.InferenceServerClient,
    not_a_digit_card: ModelCard,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """`not_a_digit` and `is_digit` among the default outputs, `[N, 1]`; blank and constant
    tensors (np.zeros...) reach the model, which must not call them confident digits."""
    images = digits[0]
    blank = np.stack([np.full((28, 28), value, np.uint8) for value in (0, 128, 255)])
    batch = np.concatenate([images[:5], blank])
    tensor = triton.InferInput("images", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)

    result = client.infer(not_a_digit_card.name, [tensor], headers=AUTH)
    not_a_digit, is_digit = result.as_numpy("not_a_digit"), result.as_numpy("is_digit")
    assert not_a_digit.dtype == np.float32 and not_a_digit.shape == (8, 1)
    assert is_digit.dtype == np.bool_ and is_digit.shape == (8, 1)
    np.testing.assert_array_equal(is_digit[:, 0], not_a_digit[:, 0] < 0.5)
    assert not is_digit[5:].any()
    best = result.as_numpy("probabilities").max(axis=1)
    assert (best[5:] < 0.5).all()

    # A request's threshold: at the highest not-a-digit probability of the five digits.
    threshold = float(not_a_digit[:5].max())
    chosen = client.infer(
        not_a_digit_card.name,
        [tensor],
        outputs=[triton.InferRequestedOutput("is_digit")],
        parameters={"not_a_digit_threshold": threshold},
        headers=AUTH,
    )
    assert chosen.as_numpy("probabilities") is None  # not requested, not sent
    np.testing.assert_array_equal(chosen.as_numpy("is_digit"), not_a_digit < threshold)
    error = _raised(
        lambda: client.infer(
            not_a_digit_card.name,
            [tensor],
            parameters={"not_a_digit_threshold": 2.0},
            headers=AUTH,
        )
    )
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "not_a_digit_threshold must be a number in (0, 1]" in error.message()


def test_errors_are_status_codes(
    client: triton.InferenceServerClient, model_card: ModelCard
) -> None:
    bad = triton.InferInput("images", [4, 28], "UINT8")
    bad.set_data_from_numpy(np.zeros((4, 28), np.uint8))
    error = _raised(lambda: client.infer(model_card.name, [bad], headers=AUTH))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'images': shape [4, 28] is not [N, 28, 28]" in error.message()

    many = triton.InferInput("images", [257, 784], "UINT8")
    many.set_data_from_numpy(np.zeros((257, 784), np.uint8))
    error = _raised(lambda: client.infer(model_card.name, [many], headers=AUTH))
    assert error.status() == "StatusCode.INVALID_ARGUMENT" and "at most 256" in error.message()

    error = _raised(lambda: client.infer("resnet50", [bad], headers=AUTH))
    assert error.status() == "StatusCode.NOT_FOUND" and "unknown model" in error.message()
    error = _raised(lambda: client.get_model_metadata(model_card.name, "0", headers=AUTH))
    assert error.status() == "StatusCode.NOT_FOUND" and "no version '0'" in error.message()
    error = _raised(lambda: client.is_model_ready("resnet50", headers=AUTH))
    assert error.status() == "StatusCode.NOT_FOUND"


def test_the_api_key_goes_in_the_metadata(
    client: triton.InferenceServerClient, model_card: ModelCard
) -> None:
    for headers, problem in [({}, "missing API key"), ({"x-api-key": "nope"}, "invalid API key")]:
        for call in (
            functools.partial(client.get_model_metadata, model_card.name, headers=headers),
            functools.partial(client.get_model_repository_index, headers=headers),
        ):
            error = _raised(call)
            assert error.status() == "StatusCode.UNAUTHENTICATED"
            assert problem in error.message()
    assert client.is_model_ready(model_card.name, headers={"authorization": f"Bearer {KEY}"})


def test_repository_index_and_no_loading(
    client: triton.InferenceServerClient, model_card: ModelCard
) -> None:
    index = client.get_model_repository_index(headers=AUTH, as_json=True)
    assert index["models"] == [
        {"name": model_card.name, "version": model_card.version, "state": "READY"}
    ]
    for call in (client.load_model, client.unload_model):
        error = _raised(functools.partial(call, model_card.name, headers=AUTH))
        assert error.status() == "StatusCode.UNIMPLEMENTED"
        assert "does not support loading or unloading models" in error.message()


def test_sigterm_drains_grpc_with_http_then_closes_its_port(model_card: ModelCard) -> None:
    port = free_port()
    env = {"DIGITS_GRPC_PORT": str(port), "DIGITS_WORKERS": "1", "DIGITS_DRAIN_SECONDS": "3"}
    with server_process(env) as server:
        address = f"127.0.0.1:{port}"
        with triton.InferenceServerClient(address) as drained:
            tensor = triton.InferInput("images", [1, 784], "UINT8")
            tensor.set_data_from_numpy(np.zeros((1, 784), np.uint8))
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _health(address) == health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "health still SERVING while draining"
                time.sleep(0.05)
            assert not drained.is_server_ready()
            assert not drained.is_model_ready(model_card.name)
            assert drained.infer(model_card.name, [tensor]).as_numpy("digit").shape == (1,)
            # After the drain the port closes with HTTP's, and the process exits 0.
            assert server.process.wait(timeout=30) == 0, server.output()
            assert "gRPC server stopped" in server.output()
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as closed:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert closed.value.code() == grpc.StatusCode.UNAVAILABLE
