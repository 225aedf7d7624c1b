"""Single-image invoke time of two or more `.tflite` files, side by side in one process.

    python -m trainer.compare_latency OLD.tflite NEW.tflite [--rounds 30 --repeats 200]

Each model gets its own one-thread LiteRT interpreter. Rounds alternate between the
models, so a busy neighbour on the machine slows them alike; the figure per model is
the median over all its timed invokes (input quantization and output read included,
as serving runs them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from service.runtime.interpreter import LiteRTModel
from trainer.measure import cpu_name


def compare(
    paths: list[Path], rounds: int = 30, repeats: int = 200, seed: int = 0
) -> dict[Path, float]:
    """Median single-image seconds per model."""
    image = np.random.default_rng(seed).random((1, 28, 28, 1), dtype=np.float32)
    models = {path: LiteRTModel(path.read_bytes(), num_threads=1) for path in paths}
    timings: dict[Path, list[float]] = {path: [] for path in paths}
    for model in models.values():
        for _ in range(20):  # warm-up: allocation and first-touch costs are not steady state
            model.run(image)
    for round_number in range(rounds):
        order = paths if round_number % 2 == 0 else list(reversed(paths))
        for path in order:
            model = models[path]
            for _ in range(repeats):
                start = time.perf_counter()
                model.run(image)
                timings[path].append(time.perf_counter() - start)
    return {path: float(np.median(values)) for path, values in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.compare_latency")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=200, help="invokes per model per round")
    args = parser.parse_args(argv)
    medians = compare(args.models, args.rounds, args.repeats)
    print(f"single-image invoke, 1 thread, median of {args.rounds * args.repeats} on {cpu_name()}")
    first = medians[args.models[0]]
    for path, seconds in medians.items():
        print(f"{seconds * 1e6:8.1f} µs  {seconds / first:6.3f}×  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
