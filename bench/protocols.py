"""Issue 23's protocols: one digits server, one 28×28 PNG per request, four ways to ask.

- `v1_json`: `POST /v1/predict`, the PNG in base64 in JSON (`digits_body`, as the HTTP
  table's digits rows send it);
- `v2_binary_bytes`: `POST /v2/models/{name}/infer` with the binary tensor data extension:
  a JSON header, its length in `Inference-Header-Content-Length`, naming one input `images`,
  BYTES, shape [1], then the element as the extension lays BYTES out (its 4-byte
  little-endian length, then the PNG); every output asked for in binary
  (`binary_data_output`), as tritonclient asks by default;
- `v2_binary_uint8`: the same, with the image already preprocessed by the service's own
  function (`preprocess_image`), sent as a [1, 28, 28] UINT8 tensor (0–255);
- `grpc_bytes`: gRPC `ModelInfer`, the PNG as a BYTES tensor, through tritonclient's
  asyncio client (bench/grpc_load.py), as many calls in flight as the concurrency.

Each at concurrency 1 and 64, in rounds (round-robin over the forms, medians reported) so
that a noisy neighbour hurts every form alike; the same images as the HTTP table's
(bench/images.py). The server runs with default settings plus `DIGITS_GRPC_PORT`.
`python -m bench.protocols` runs this alone and prints the table.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from bench.contenders import PORT, Contender, started
from bench.grpc_load import grpc_inputs, run_grpc_load
from bench.http_runs import median_summary
from bench.images import digits_body, mnist_pngs
from bench.loadgen import LoadResult, post_request, run_load
from bench.servers import HOST, free_port
from bench.targets import PROTOCOLS, protocol_ratios, protocol_table
from service.imaging.preprocess import preprocess_image
from service.model_card import ModelCard
from service.settings import Settings

CONCURRENCY = (1, 64)
HEADER_LENGTH = "Inference-Header-Content-Length"
# Measures one form at a concurrency: (concurrency, requests, time limit) → result.
Load = Callable[[int, int, float], LoadResult]


@dataclass(frozen=True)
class HttpRequest:
    """What one HTTP form sends: a POST of `body` to `path`, with its headers."""

    path: str
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def raw(self, host: str, port: int) -> bytes:
        """The request's bytes, as bench/loadgen.py sends them."""
        return post_request(
            host, port, self.path, self.body, content_type=self.content_type, headers=self.headers
        )


def uint8_pixels(png: bytes) -> np.ndarray:
    """The PNG as the model sees it, by the service's own preprocessing (float32 in [0, 1]),
    scaled to 0–255: uint8 (28, 28)."""
    return np.rint(preprocess_image(png) * 255).astype(np.uint8)


def http_request(form: str, model_name: str, png: bytes) -> HttpRequest:
    """One PNG as the HTTP `form` (`v1_json`, `v2_binary_bytes` or `v2_binary_uint8`)."""
    if form == "v1_json":
        return HttpRequest("/v1/predict", digits_body([png]))
    if form == "v2_binary_bytes":
        return _binary(model_name, "BYTES", [1], struct.pack("<I", len(png)) + png)
    if form == "v2_binary_uint8":
        pixels = uint8_pixels(png)
        return _binary(model_name, "UINT8", [1, *pixels.shape], pixels.tobytes())
    raise ValueError(f"not an HTTP form: {form}")


def _binary(model_name: str, datatype: str, shape: list[int], data: bytes) -> HttpRequest:
    tensor = {
        "name": "images",
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": len(data)},
    }
    header = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    return HttpRequest(
        f"/v2/models/{model_name}/infer",
        header + data,
        "application/octet-stream",
        {HEADER_LENGTH: str(len(header))},
    )


def _loads(
    http_port: int, grpc_address: str, model_name: str, pngs: list[bytes]
) -> dict[str, Load]:
    """Each form's load, its requests made once, before any clock starts."""
    loads: dict[str, Load] = {}
    for form in PROTOCOLS:
        if form == "grpc_bytes":
            loads[form] = _grpc_load(grpc_address, model_name, pngs)
        else:
            payloads = [http_request(form, model_name, png).raw(HOST, http_port) for png in pngs]
            loads[form] = _http_load(http_port, payloads)
    return loads


def _http_load(port: int, payloads: list[bytes]) -> Load:
    def load(concurrency: int, requests: int, time_limit: float) -> LoadResult:
        return run_load(
            HOST, port, payloads, concurrency=concurrency, requests=requests, time_limit=time_limit
        )

    return load


def _grpc_load(address: str, model_name: str, pngs: list[bytes]) -> Load:
    inputs = [grpc_inputs(png) for png in pngs]

    def load(concurrency: int, requests: int, time_limit: float) -> LoadResult:
        return run_grpc_load(
            address,
            model_name,
            inputs,
            concurrency=concurrency,
            requests=requests,
            time_limit=time_limit,
        )

    return load


def measure_protocols(
    pngs: list[bytes],
    *,
    rounds: int,
    requests: Mapping[int, int],
    time_limit: float,
    workers: int = 0,
) -> dict[str, object]:
    """Every form at each concurrency on one server, the median of `rounds` rounds; and
    each form's ratios to `/v1` (`protocol_ratios`)."""
    card = ModelCard.load(Settings().model_card_path())
    grpc_port = free_port()
    env = {"DIGITS_HOST": HOST, "DIGITS_PORT": PORT, "DIGITS_GRPC_PORT": str(grpc_port)}
    if workers:
        env["DIGITS_WORKERS"] = str(workers)
    command = [sys.executable, "-m", "service"]
    contender = Contender("digits-protocols", command, env, "/v1/predict", digits_body)
    runs: dict[str, dict[int, list[LoadResult]]] = {form: {} for form in PROTOCOLS}
    with started(contender) as server:
        loads = _loads(server.port, f"{HOST}:{grpc_port}", card.name, pngs)
        for round_ in range(rounds):
            print(f"protocols round {round_ + 1}/{rounds}", flush=True)
            for form, load in loads.items():
                for concurrency in CONCURRENCY:
                    result = load(concurrency, requests[concurrency], time_limit)
                    runs[form].setdefault(concurrency, []).append(result)
        processes = server.notes["processes"]
    forms = {
        form: {str(c): median_summary(results) for c, results in by_concurrency.items()}
        for form, by_concurrency in runs.items()
    }
    return {
        "server": "digits, default settings + DIGITS_GRPC_PORT",
        "processes": processes,
        "forms": forms,
        "vs_v1": protocol_ratios(forms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (medians)")
    parser.add_argument("--workers", type=int, default=0, help="DIGITS_WORKERS (0: default)")
    options = parser.parse_args(argv)
    results = measure_protocols(
        mnist_pngs(256),
        rounds=options.rounds,
        requests=dict.fromkeys(CONCURRENCY, 10**9),
        time_limit=options.seconds,
        workers=options.workers,
    )
    print("\n".join(protocol_table({"protocols": results})))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
