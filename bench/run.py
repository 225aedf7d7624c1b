"""`make bench` / `python -m bench.run [--quick]`: every serving benchmark, side by side.

One run, one machine, the same images for every contender:

1. floor — the bare LiteRT interpreter, batch 1 and 256, each .tflite in the card;
2. pipeline — decode + preprocess + inference in process, 28×28 PNGs and 300×300 JPEGs;
3. HTTP single image at concurrency 1, 8, 64 and 4. batch scoring at 1-256 images, for:
   `digits` (this service as shipped), `digits-batching` (micro-batching on),
   `seed` (.h5 in Keras, FastAPI, `model.predict` per request) and `bentoml` (the same
   .tflite and preprocessing in BentoML with adaptive batching);
5. start-up time to a 200 from /readyz, RSS idle and under load.

HTTP runs are interleaved (round-robin over the servers, `--rounds` times, medians
reported) so that a noisy neighbour hurts every contender alike. The load generator
is bench/loadgen.py; it runs on the same cores and its CPU use is reported.
Results: bench/results/latest.{json,md,png} (+ a timestamped JSON copy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import peer
from bench.floor import measure_floor
from bench.images import digits_body, mnist_pngs, peer_body, photo_jpegs
from bench.loadgen import LoadResult, post_request, run_load
from bench.pipeline import measure_pipeline
from bench.report import write_report
from bench.servers import HOST, REPO_ROOT, Server, free_port, running
from service.model_card import ModelCard
from service.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 8, 64)
BATCH_SIZES = (1, 16, 64, 256)


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


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]
    path: str  # the prediction route
    body: Callable[[list[bytes]], bytes]
    batch_scoring: bool = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny budgets")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed's-way server")
    parser.add_argument("--no-peer", action="store_true", help="skip the BentoML peer")
    parser.add_argument("--no-http", action="store_true", help="in-process parts only")
    parser.add_argument("--rounds", type=int, help="HTTP rounds per scenario (medians)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    if args.rounds:
        budget = Budget(**{**budget.__dict__, "rounds": args.rounds})
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

    if not args.no_http:
        contenders = _contenders(args, model_path, results)
        results["http"] = _http(contenders, pngs, budget)
    results["seconds"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = json.dumps(results, indent=2)
    (args.out / "latest.json").write_text(text + "\n")
    (args.out / f"run-{stamp}.json").write_text(text + "\n")
    markdown = write_report(results, args.out)
    print(markdown)
    print(f"done in {results['seconds']} s: {args.out}/latest.md, latest.png, latest.json")
    return 0


def _contenders(
    args: argparse.Namespace, model_path: Path, results: dict[str, object]
) -> list[Contender]:
    python = str(REPO_ROOT / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    quiet = {"DIGITS_ACCESS_LOG": "false", "DIGITS_LOG_LEVEL": "warning", "DIGITS_HOST": HOST}
    found = [
        Contender("digits", [python, "-m", "service"], quiet, "/v1/predict", digits_body),
        Contender(
            "digits-batching",
            [python, "-m", "service"],
            {**quiet, "DIGITS_BATCHING": "true"},
            "/v1/predict",
            digits_body,
            batch_scoring=False,  # batching only concerns single-image requests
        ),
    ]
    if not (args.quick or args.no_seed):
        found.append(
            Contender("seed", [python, "-m", "bench.seed_server"], {}, "/v1/predict", digits_body)
        )
    if not (args.quick or args.no_peer):
        bentoml, install_seconds = peer.ensure_venv()
        results["bentoml"] = {"version": peer.version(), "venv_created_seconds": install_seconds}
        found.append(
            Contender(
                "bentoml",
                [str(bentoml), "serve", "bench.bentoml_service:Digits", "--host", HOST],
                {"BENCH_MODEL": str(model_path), "PYTHONPATH": str(REPO_ROOT)},
                "/predict",
                peer_body,
            )
        )
    return found


@contextlib.contextmanager
def _started(contender: Contender) -> Iterator[Server]:
    port = free_port()
    command = list(contender.command)
    env = dict(contender.env)
    if contender.name.startswith("digits"):
        env["DIGITS_PORT"] = str(port)
    elif contender.name == "bentoml":
        command += ["--port", str(port)]
    else:
        command.append(str(port))
    with running(contender.name, command, port, env=env, timeout=180) as server:
        _wait_all_workers(server)
        server.notes["rss_idle_mb"] = server.rss_mb()
        server.notes["processes"] = server.processes()
        yield server


def _wait_all_workers(server: Server) -> None:
    # With several worker processes the first 200 may come from one of them: ready
    # means every fresh connection gets a 200 (checked 20 times, bounded).
    import urllib.request

    for _ in range(200):
        try:
            statuses = []
            for _ in range(20):
                with urllib.request.urlopen(f"http://{HOST}:{server.port}/readyz", timeout=2) as r:
                    statuses.append(r.status)
            if all(status == 200 for status in statuses):
                return
        except OSError:
            pass
        time.sleep(0.01)


def _http(
    contenders: list[Contender], pngs: list[bytes], budget: Budget
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for contender in contenders:  # started one after another: start-up is timed alone
            print(f"starting {contender.name}", flush=True)
            servers[contender.name] = stack.enter_context(_started(contender))
            server = servers[contender.name]
            out[contender.name] = {
                "ready_seconds": server.ready_seconds,
                "rss_idle_mb": server.notes["rss_idle_mb"],
                "processes": server.notes["processes"],
                "single": {},
                "batch": {},
            }
        single: dict[str, dict[int, list[LoadResult]]] = {c.name: {} for c in contenders}
        batch: dict[str, dict[int, list[LoadResult]]] = {c.name: {} for c in contenders}
        peak_rss: dict[str, float] = {c.name: 0.0 for c in contenders}
        for round_ in range(budget.rounds):
            print(f"HTTP round {round_ + 1}/{budget.rounds}", flush=True)
            for contender in contenders:
                server = servers[contender.name]
                payloads = [
                    post_request(HOST, server.port, contender.path, contender.body([png]))
                    for png in pngs
                ]
                for concurrency in CONCURRENCY:
                    with _peak_memory(server) as peak:
                        result = run_load(
                            HOST,
                            server.port,
                            payloads,
                            concurrency=concurrency,
                            requests=budget.requests[concurrency],
                            time_limit=budget.time_limit,
                        )
                    peak_rss[contender.name] = max(peak_rss[contender.name], peak[0])
                    single[contender.name].setdefault(concurrency, []).append(result)
                if not contender.batch_scoring:
                    continue
                for size in BATCH_SIZES:
                    body = contender.body(pngs[:size])
                    result = run_load(
                        HOST,
                        server.port,
                        [post_request(HOST, server.port, contender.path, body)],
                        concurrency=1,
                        requests=budget.batch_requests,
                        time_limit=budget.time_limit,
                        warmup=1,
                    )
                    batch[contender.name].setdefault(size, []).append(result)
        for name in out:
            out[name]["rss_load_mb"] = peak_rss[name]
            out[name]["single"] = {str(c): _median(r) for c, r in single[name].items()}
            out[name]["batch"] = {
                str(size): {**_median(r), "images_per_s": round(_med(r, "throughput") * size, 1)}
                for size, r in batch[name].items()
            }
    return out


@contextlib.contextmanager
def _peak_memory(server: Server) -> Iterator[list[float]]:
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            peak[0] = max(peak[0], server.rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _med(results: list[LoadResult], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in results))


def _median(results: list[LoadResult]) -> dict[str, object]:
    keys = ("throughput", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "client_cpu")
    summary: dict[str, object] = {key: round(_med(results, key), 3) for key in keys}
    summary["requests"] = sum(r.requests for r in results)
    summary["errors"] = sum(r.errors for r in results)
    summary["runs"] = len(results)
    errors = [r.first_error for r in results if r.first_error]
    if errors:
        summary["first_error"] = errors[0]
    return summary


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
