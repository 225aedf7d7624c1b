"""gRPC Open Inference Protocol load: closed-loop `ModelInfer` calls at a given concurrency.

`run_grpc_load` returns bench/loadgen.py's `LoadResult`, so `make bench` can put gRPC
beside HTTP. Each request is serialized once (`infer_request_bytes`, with tritonclient's
own messages, as a Triton client sends them) and sent as bytes over grpc.aio channels, so
that the client's per-call Python cost stays as small as the HTTP load generator's.
Calls are spread over `channels` channels, each its own HTTP/2 connection (a local
subchannel pool), because with several server workers the kernel hands each connection
to one worker (SO_REUSEPORT): one channel would load one worker only.

`python -m bench.grpc_load` starts the service with `DIGITS_GRPC_PORT` and prints gRPC
and REST `/v2` (the same PNG) at concurrency 1 and 64, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import sys
import time
from collections.abc import Sequence

import grpc
import orjson
from tritonclient.grpc import service_pb2

from bench.images import mnist_pngs
from bench.loadgen import LoadResult, _summarize, post_request, run_load
from bench.servers import HOST, free_port, running
from service.model_card import ModelCard
from service.settings import Settings

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def infer_request_bytes(model_name: str, png: bytes) -> bytes:
    """A serialized `ModelInferRequest`: one PNG as a BYTES tensor in raw contents."""
    request = service_pb2.ModelInferRequest(model_name=model_name)
    request.inputs.add(name="images", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(struct.pack("<I", len(png)) + png)
    serialized: bytes = request.SerializeToString()
    return serialized


def run_grpc_load(
    address: str,
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    requests: int,
    time_limit: float,
    channels: int = 8,
    warmup: int = 2,
    metadata: Sequence[tuple[str, str]] = (),
) -> LoadResult:
    """Closed loop: `concurrency` callers over `min(channels, concurrency)` channels, at most
    `requests` calls or `time_limit` s; a call that is not OK counts as an error."""
    return asyncio.run(
        _run(address, payloads, concurrency, requests, time_limit, channels, warmup, metadata)
    )


async def _run(
    address: str,
    payloads: Sequence[bytes],
    concurrency: int,
    total: int,
    time_limit: float,
    channels: int,
    warmup: int,
    metadata: Sequence[tuple[str, str]],
) -> LoadResult:
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [
        grpc.aio.insecure_channel(address, options=options)
        for _ in range(max(1, min(channels, concurrency)))
    ]
    calls = [channel.unary_unary(METHOD) for channel in opened]  # bytes in, bytes out
    latencies: list[float] = []
    errors, issued, ready = 0, 0, 0
    first_error: list[str] = []
    deadline = 0.0
    start = asyncio.Event()

    async def caller(index: int) -> None:
        nonlocal issued, errors, ready
        call = calls[index % len(calls)]
        for i in range(warmup):  # not counted
            await call(payloads[i % len(payloads)], metadata=metadata)
        ready += 1
        await start.wait()
        while issued < total and time.perf_counter() < deadline:
            payload = payloads[issued % len(payloads)]
            issued += 1
            began = time.perf_counter()
            try:
                await call(payload, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                errors += 1
                if not first_error:
                    first_error.append(f"{error.code()}: {error.details()}")
            latencies.append(time.perf_counter() - began)

    try:
        tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
        # Every caller connects and warms up before the clock starts (bounded wait).
        warm_deadline = time.perf_counter() + 10.0
        while ready + sum(t.done() for t in tasks) < concurrency:
            if time.perf_counter() > warm_deadline:
                break
            await asyncio.sleep(0.005)
        cpu_before, began = time.process_time(), time.perf_counter()
        deadline = began + time_limit
        start.set()
        await asyncio.gather(*tasks)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_before
    finally:
        for channel in opened:
            await channel.close()
    return _summarize(concurrency, latencies, errors, seconds, cpu, first_error)


def measure_grpc(
    seconds: float, concurrencies: Sequence[int] = (1, 64), workers: int = 0
) -> dict[str, dict[str, dict[str, object]]]:
    """gRPC ModelInfer beside REST `/v2` infer on one digits server (default settings plus
    DIGITS_GRPC_PORT), one 28×28 PNG per call, each for `seconds` per concurrency level."""
    card = ModelCard.load(Settings().model_card_path())
    pngs = mnist_pngs(64)
    grpc_payloads = [infer_request_bytes(card.name, png) for png in pngs]
    rest_bodies = [
        orjson.dumps(
            {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                         "data": [base64.b64encode(png).decode()]}]}
        )
        for png in pngs
    ]  # fmt: skip
    http_port, grpc_port = free_port(), free_port()
    env = {
        "DIGITS_HOST": HOST, "DIGITS_PORT": str(http_port), "DIGITS_GRPC_PORT": str(grpc_port),
        "DIGITS_WORKERS": str(workers), "DIGITS_ACCESS_LOG": "false",
        "DIGITS_LOG_LEVEL": "warning",
    }  # fmt: skip
    results: dict[str, dict[str, dict[str, object]]] = {"grpc": {}, "rest_v2": {}}
    with running("digits-grpc", [sys.executable, "-m", "service"], http_port, env=env):
        path = f"/v2/models/{card.name}/infer"
        rest = [post_request(HOST, http_port, path, body) for body in rest_bodies]
        for concurrency in concurrencies:
            results["grpc"][str(concurrency)] = run_grpc_load(
                f"{HOST}:{grpc_port}",
                grpc_payloads,
                concurrency=concurrency,
                requests=10**9,
                time_limit=seconds,
            ).as_dict()
            results["rest_v2"][str(concurrency)] = run_load(
                HOST, http_port, rest, concurrency=concurrency, requests=10**9, time_limit=seconds
            ).as_dict()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--workers", type=int, default=0, help="DIGITS_WORKERS (0: per core)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    options = parser.parse_args(argv)
    results = measure_grpc(options.seconds, options.concurrency, options.workers)
    print("| protocol | c | requests/s | p50 ms | p99 ms | errors | client CPU |")
    print("|---|---|---|---|---|---|---|")
    for protocol, by_concurrency in results.items():
        for c, r in by_concurrency.items():
            print(
                f"| {protocol} | {c} | {r['throughput']} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['errors']} | {r['client_cpu']} |"
            )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
