"""gRPC Open Inference Protocol load: closed-loop `ModelInfer` calls at a given concurrency.

`run_grpc_load` returns bench/loadgen.py's `LoadResult`, so that bench/protocols.py can put
gRPC beside HTTP. Every call goes through tritonclient's gRPC asyncio client
(`tritonclient.grpc.aio.InferenceServerClient.infer`), as a Triton user's program makes it:
the `ModelInferRequest` is built from `InferInput`s (made once per image, `grpc_inputs`)
and the response read into an `InferResult`, call after call. `concurrency` calls are in
flight at once, spread over `min(channels, concurrency)` clients, each its own channel and
HTTP/2 connection (a local subchannel pool): with several server workers the kernel hands
each connection to one worker (SO_REUSEPORT), so one connection would load one worker only.

`python -m bench.protocols` measures gRPC beside `/v1` and `/v2`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from bench.loadgen import LoadResult, _summarize

# tritonclient's own message size limits; the local pool gives each client its connection.
_MAX_MESSAGE = 2**31 - 1
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.use_local_subchannel_pool", 1),
]


def grpc_inputs(png: bytes) -> list[InferInput]:
    """`ModelInfer`'s inputs for one PNG: `images`, a BYTES tensor of shape [1]."""
    tensor = InferInput("images", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([png], dtype=np.object_))
    return [tensor]


def run_grpc_load(
    address: str,
    model_name: str,
    inputs: Sequence[list[InferInput]],
    *,
    concurrency: int,
    requests: int,
    time_limit: float,
    channels: int = 8,
    warmup: int = 2,
) -> LoadResult:
    """Closed loop: `concurrency` callers over `min(channels, concurrency)` clients, at most
    `requests` calls or `time_limit` s; a call that fails counts as an error. All outputs
    are asked for (none named), as tritonclient does by default."""
    clients = max(1, min(channels, concurrency))
    return asyncio.run(
        _run(address, model_name, inputs, concurrency, requests, time_limit, clients, warmup)
    )


async def _run(
    address: str,
    model_name: str,
    inputs: Sequence[list[InferInput]],
    concurrency: int,
    total: int,
    time_limit: float,
    clients: int,
    warmup: int,
) -> LoadResult:
    opened = [InferenceServerClient(address, channel_args=CHANNEL_ARGS) for _ in range(clients)]
    latencies: list[float] = []
    errors, issued, ready = 0, 0, 0
    first_error: list[str] = []
    deadline = 0.0
    start = asyncio.Event()

    async def caller(index: int) -> None:
        nonlocal issued, errors, ready
        client = opened[index % len(opened)]
        for i in range(warmup):  # not counted; a server still starting may refuse one
            try:
                await client.infer(model_name, inputs[i % len(inputs)])
            except InferenceServerException:
                await asyncio.sleep(0.05)
        ready += 1
        await start.wait()
        while issued < total and time.perf_counter() < deadline:
            request = inputs[issued % len(inputs)]
            issued += 1
            began = time.perf_counter()
            try:
                await client.infer(model_name, request)
            except InferenceServerException as error:
                errors += 1
                if not first_error:
                    first_error.append(f"{error.status()}: {error.message()}")
            latencies.append(time.perf_counter() - began)

    try:
        tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
        await _warmed_up(tasks, lambda: ready)
        cpu_before, began = time.process_time(), time.perf_counter()
        deadline = began + time_limit
        start.set()
        await asyncio.gather(*tasks)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_before
    finally:
        for client in opened:
            await client.close()
    return _summarize(concurrency, latencies, errors, seconds, cpu, first_error)


async def _warmed_up(tasks: Sequence[asyncio.Task[None]], ready: Callable[[], int]) -> None:
    """Until every caller has connected and warmed up (or ended), at most 10 s."""
    warm_deadline = time.perf_counter() + 10.0
    while ready() + sum(t.done() for t in tasks) < len(tasks):
        if time.perf_counter() > warm_deadline:
            break
        await asyncio.sleep(0.005)
