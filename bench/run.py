"""`make bench` / `python -m bench.run [--quick]`: every serving benchmark, side by side.

One run, one machine, the same images for every contender:

1. floor — the bare LiteRT interpreter, batch 1 and 256, each .tflite in the card;
2. pipeline — decode + preprocess + inference in process, 28×28 PNGs and 300×300 JPEGs;
3. HTTP single image at concurrency 1, 8, 64 and batch scoring at 1-256 images for
   digits, the reference app and the peers (bench/contenders.py, bench/http_runs.py);
4. start-up time to a 200 from the ready route, RSS idle and under load;
5. protocols: one PNG per request as `/v1` JSON, `/v2` binary BYTES, `/v2` binary UINT8
   and gRPC BYTES, on one digits server, c=1 and c=64 (bench/protocols.py).

The load generator is bench/loadgen.py; it runs on the same cores and its CPU use is
reported. A peer's venv is created on the first run only; that time is reported apart
and not counted in the run's time. Results: bench/results/latest.{json,md,png} (+ a
timestamped JSON copy).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.contenders import build
from bench.floor import measure_floor
from bench.http_runs import measure_http
from bench.images import mnist_pngs, photo_jpegs
from bench.pipeline import measure_pipeline
from bench.protocols import measure_protocols
from bench.report import write_report
from bench.servers import REPO_ROOT
from service.model_card import ModelCard
from service.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Budget:
    """How long each measurement may take: full for `make bench`, tiny for --quick."""

    floor_seconds: float
    pipeline_seconds: float
    rounds: int
    requests: dict[int, int]  # per concurrency level
    batch_requests: int
    time_limit: float


FULL = Budget(2.0, 2.0, 3, {1: 1500, 8: 4000, 64: 8000}, 200, 2.5)
QUICK = Budget(0.3, 0.3, 1, {1: 100, 8: 200, 64: 400}, 5, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny budgets")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed's-way server")
    parser.add_argument("--no-peer", action="store_true", help="skip the framework peers")
    parser.add_argument("--no-http", action="store_true", help="in-process parts only")
    parser.add_argument("--rounds", type=int, help="HTTP rounds per scenario (medians)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    if args.rounds:
        budget = replace(budget, rounds=args.rounds)
    began = time.perf_counter()
    results: dict[str, object] = {"machine": _machine(), "quick": args.quick}

    card_path = Settings().model_card_path()
    card = ModelCard.load(card_path)
    served = card.artifacts[card.serving_default]
    model_path = card_path.parent / served.file
    results["served_model"] = served.file
    pngs = mnist_pngs(256)
    jpegs = photo_jpegs(32 if args.quick else 128)

    print("floor: bare interpreter", flush=True)
    results["floor"] = {
        artifact.file: {
            str(batch): measure_floor(card_path.parent / artifact.file, batch, budget.floor_seconds)
            for batch in (1, 256)
        }
        for artifact in card.artifacts.values()
        if artifact.format == "tflite"
    }
    print("pipeline: decode + preprocess + inference in process", flush=True)
    results["pipeline"] = {
        "png28": measure_pipeline(model_path, pngs, budget.pipeline_seconds),
        "jpeg300": measure_pipeline(model_path, jpegs, budget.pipeline_seconds),
    }

    venv_seconds = 0.0
    if not args.no_http:
        _compile_checkout()
        contenders, peers = build(model_path, seed=not args.no_seed, peers=not args.no_peer)
        results["peers"] = peers
        venv_seconds = sum(float(str(p["venv_created_seconds"])) for p in peers.values())
        results["http"] = measure_http(
            contenders,
            pngs,
            rounds=budget.rounds,
            requests=budget.requests,
            batch_requests=budget.batch_requests,
            time_limit=budget.time_limit,
        )
        print("protocols: /v1 JSON, /v2 binary, gRPC on one digits server", flush=True)
        results["protocols"] = measure_protocols(
            pngs, rounds=budget.rounds, requests=budget.requests, time_limit=budget.time_limit
        )
    results["venv_seconds"] = venv_seconds
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - began - venv_seconds, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = json.dumps(results, indent=2)
    (args.out / "latest.json").write_text(text + "\n")
    (args.out / f"run-{stamp}.json").write_text(text + "\n")
    markdown = write_report(results, args.out)
    print(markdown)
    print(f"done in {results['seconds']} s: {args.out}/latest.md, latest.png, latest.json")
    return 0


def _compile_checkout() -> None:
    """Bytecode for the servers started from this checkout (digits, the reference app, the
    seed's), as an installed package has it (pip compiles on install; the peers' venvs do):
    an editable install has none, and with PYTHONDONTWRITEBYTECODE set (CI, containers)
    every start would compile each module again, ~0.3 s of digits' ready time (AMD EPYC)."""
    for package in ("service", "bench"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)


def _machine() -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_generator": "bench/loadgen.py (asyncio + uvloop, keep-alive, closed loop)",
    }


if __name__ == "__main__":
    sys.exit(main())
