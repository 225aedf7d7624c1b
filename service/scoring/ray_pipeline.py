"""Batch scoring past one machine: a Ray Data pipeline around the in-process runtime.

`digits-score` sends files to one running service; for millions of images a Ray cluster
reads them where they lie (a folder, S3, GCS: anything `ray.data.read_binary_files`
reads), scores them in `map_batches` with one `Recognizer` per actor (the model is loaded
and verified once per actor, not per batch), and writes `path,digit,confidence,error,
is_digit,not_a_digit` (the last two null for a model without the not-a-digit output) as
Parquet or CSV files. An unreadable or refused image is a row with its error, not a
failed job.

    pip install 'digits[batch]'
    digits-score-ray ./scans --output ./scores --format csv          # local Ray
    digits-score-ray s3://bucket/scans --output s3://bucket/scores --address auto

Ray is imported only here, and only when this runs: the service needs the `serve`
extra alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

BATCH_SIZE = 256  # images per map_batches call: one interpreter call's worth, bounded memory
FORMATS = ("parquet", "csv")


class DigitScorer:
    """The `map_batches` callable: one verified model per Ray actor."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        from service.runtime.recognizer import Recognizer
        from service.scoring.local import LocalScorer

        # The pipeline's parallelism is Ray's actors; one decode thread and one
        # interpreter each keeps an actor on the one CPU Ray reserved for it.
        options = {"decode_threads": 1, "interpreters": 1, **(settings or {})}
        self.scorer = LocalScorer(Recognizer.open(**options))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import pyarrow as pa

        names = [str(path) for path in batch["path"]]
        results = self.scorer.score_bytes(names, [bytes(data) for data in batch["bytes"]])
        # Typed columns: a refused image has a null digit (not -1, not 0.0 in the CSV).
        return pa.table(
            {
                "path": pa.array(names, pa.string()),
                "digit": pa.array([r.digit for r in results], pa.int8()),
                "confidence": pa.array([r.confidence for r in results], pa.float64()),
                "error": pa.array([r.error for r in results], pa.string()),
                "is_digit": pa.array([r.is_digit for r in results], pa.bool_()),
                "not_a_digit": pa.array([r.not_a_digit for r in results], pa.float64()),
            }
        )


def default_actors() -> int:
    """One model replica per CPU of the Ray cluster but one: reading the files needs a CPU
    too, and an actor pool holding every CPU would leave the reads none (the job stalls)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)


def score_dataset(
    images: Dataset,
    *,
    actors: int | None = None,
    batch_size: int = BATCH_SIZE,
    settings: dict[str, Any] | None = None,
) -> Dataset:
    """Scores a dataset with `bytes` (encoded images) and `path` columns, as made by
    `ray.data.read_binary_files(..., include_paths=True)`; columns `path, digit,
    confidence, error, is_digit, not_a_digit` out, one row per image. `actors` defaults
    to `default_actors()`."""
    if actors is None:
        actors = default_actors()
    if actors < 1 or batch_size < 1:
        raise ValueError("actors and batch_size must be at least 1")
    from ray.data import ActorPoolStrategy

    return images.map_batches(
        DigitScorer,
        fn_constructor_kwargs={"settings": settings},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=1,
    )


def score_folder(
    source: str | Sequence[str],
    output: str,
    *,
    output_format: str = "parquet",
    actors: int | None = None,
    batch_size: int = BATCH_SIZE,
    settings: dict[str, Any] | None = None,
) -> None:
    """Reads every file under `source`, scores it, writes the rows under `output`."""
    import ray.data

    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}; choose one of: {', '.join(FORMATS)}")
    images = ray.data.read_binary_files(
        source if isinstance(source, str) else list(source), include_paths=True
    )
    scored = score_dataset(images, actors=actors, batch_size=batch_size, settings=settings)
    if output_format == "csv":
        scored.write_csv(output)
    else:
        scored.write_parquet(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="digits-score-ray",
        description="Score a folder (or any path Ray reads) of digit images on a Ray cluster.",
    )
    parser.add_argument("source", nargs="+", help="files or folders (local, s3://, gs://, ...)")
    parser.add_argument("--output", required=True, help="folder the result files are written to")
    parser.add_argument("--format", choices=FORMATS, default="parquet", dest="output_format")
    parser.add_argument(
        "--actors", type=int, default=None, help="model replicas (default: the cluster's CPUs - 1)"
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto', 'ray://head:10001'); default: a local Ray",
    )
    args = parser.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("digits-score-ray: Ray is missing: pip install 'digits[batch]'", file=sys.stderr)
        return 2
    ray.init(address=args.address)
    try:
        score_folder(
            args.source,
            args.output,
            output_format=args.output_format,
            actors=args.actors,
            batch_size=args.batch_size,
        )
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
