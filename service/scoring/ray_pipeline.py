"""Batch scoring past one machine: a Ray Data pipeline around the in-process runtime.

`digits-score` sends files to one running service; for millions of images a Ray cluster
reads them where they lie (a folder, S3, GCS: anything `ray.data.read_binary_files`
reads), scores them in `map_batches` with one `Recognizer` per actor (the model is loaded
and verified once per actor, not per batch), and writes `path,digit,confidence,error,
is_digit,not_a_digit` (the last two null for a model without the not-a-digit output) as
Parquet or CSV files. An unreadable or refused image is a row with its error, not a
failed job.

Local paths are collected as `digits-score` collects them (service/scoring/files.py),
not by Ray's listing: that one failed the whole job on a file name that is not UTF-8, and
followed a symbolic link loop forty levels deep, reading a file once per level. Names are
written as `digits-score` writes them (`escape_name`), files read within `--max-file-bytes`.

    pip install 'digits[batch]'
    digits-score-ray ./scans --output ./scores --format csv          # local Ray
    digits-score-ray s3://bucket/scans --output s3://bucket/scores --address auto

Ray is imported only here, and only when this runs: the service needs the `serve`
extra alone.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from service.scoring.files import Entry, collect
from service.scoring.output import (
    CRASHED,
    EXIT_STATUS_HELP,
    FAILED_FILES,
    INTERRUPTED,
    SCORED,
    USAGE,
)
from service.scoring.ray_steps import DigitScorer, count_errors, read_files
from service.scoring.reading import option_limit
from service.scoring.results import escape_name

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["DigitScorer", "Sources", "Written", "main", "score_dataset", "score_folder"]

BATCH_SIZE = 256  # images per map_batches call: one interpreter call's worth, bounded memory
FORMATS = ("parquet", "csv")


class Written(NamedTuple):
    """What `score_folder` wrote: rows, and how many of them are errors."""

    rows: int
    errors: int


@dataclass
class Sources:
    """What to score: local files (collected here, every file once) and other URIs
    (`s3://...`, read by Ray); and local paths or patterns that matched nothing."""

    entries: list[Entry] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, source: str | Sequence[str]) -> Sources:
        sources = [source] if isinstance(source, str) else list(source)
        remote = [uri for uri in sources if "://" in uri]
        # Absolute: Ray's workers read them, wherever their working folder is.
        entries, unmatched = collect([str(Path(p).absolute()) for p in sources if p not in remote])
        return cls(entries, remote, unmatched)


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
    `ray.data.read_binary_files(..., include_paths=True)`, and optionally `error` (a row
    with one is passed on unscored); columns `path, digit, confidence, error, is_digit,
    not_a_digit` out, one row per image. `actors` defaults to `default_actors()`."""
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


def local_images(
    entries: list[Entry], *, batch_size: int = BATCH_SIZE, max_file_bytes: int | None = None
) -> Dataset:
    """Local files as a dataset of `path`, `bytes`, `error`, read by Ray tasks within the
    byte limit; a file not to be read (a FIFO, a dangling link...) keeps its error."""
    import pyarrow as pa
    import ray.data

    table = pa.table(
        {
            "path": pa.array([escape_name(str(e.path)) for e in entries], pa.string()),
            "error": pa.array([e.error for e in entries], pa.string()),
        }
    )
    # One block per batch: the reads spread over Ray's workers.
    blocks = [table.slice(start, batch_size) for start in range(0, len(entries), batch_size)]
    limit = option_limit(max_file_bytes)
    reader = partial(read_files, max_bytes=limit.max_bytes, source=limit.source)
    return ray.data.from_arrow(blocks).map_batches(
        reader,
        batch_size=batch_size,
        batch_format="pyarrow",
    )


def score_folder(
    source: str | Sequence[str] | Sources,
    output: str,
    *,
    output_format: str = "parquet",
    actors: int | None = None,
    batch_size: int = BATCH_SIZE,
    settings: dict[str, Any] | None = None,
    max_file_bytes: int | None = None,
) -> Written:
    """Reads every file under `source`, scores it, writes the rows under `output`."""
    import ray.data

    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}; choose one of: {', '.join(FORMATS)}")
    sources = source if isinstance(source, Sources) else Sources.of(source)
    parts = []
    if sources.entries:
        parts.append(
            local_images(sources.entries, batch_size=batch_size, max_file_bytes=max_file_bytes)
        )
    if sources.remote:
        parts.append(ray.data.read_binary_files(sources.remote, include_paths=True))
    if not parts:
        raise ValueError(f"nothing to score in {source}")
    scored_parts = [
        score_dataset(images, actors=actors, batch_size=batch_size, settings=settings)
        for images in parts
    ]
    scored = scored_parts[0].union(*scored_parts[1:]) if len(scored_parts) > 1 else scored_parts[0]
    # Materialized: written, then its error rows counted, from one run of the pipeline.
    scored = scored.materialize()
    if output_format == "csv":
        scored.write_csv(output)
    else:
        scored.write_parquet(output)
    errors = scored.map_batches(count_errors, batch_format="pyarrow").sum("errors") or 0
    return Written(scored.count(), int(errors))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-score-ray",
        description="Score a folder (or any path Ray reads) of digit images on a Ray cluster.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        nargs="+",
        help="files, folders or glob patterns (local), or URIs (s3://, gs://, ...)",
    )
    parser.add_argument("--output", required=True, help="folder the result files are written to")
    parser.add_argument("--format", choices=FORMATS, default="parquet", dest="output_format")
    parser.add_argument(
        "--actors", type=int, default=None, help="model replicas (default: the cluster's CPUs - 1)"
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        metavar="N",
        help="larger local files are error rows, not read (default: 33554432, "
        "DIGITS_MAX_BODY_BYTES' default)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto', 'ray://head:10001'); default: a local Ray",
    )
    args = parser.parse_args(argv)
    for name in ("actors", "batch_size", "max_file_bytes"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)  # exits with status 2 on bad arguments
    try:
        import ray
    except ImportError:
        print("digits-score-ray: Ray is missing: pip install 'digits[batch]'", file=sys.stderr)
        return USAGE
    sources = Sources.of(args.source)
    for pattern in sources.unmatched:
        print(
            f"digits-score-ray: error: no such file, or nothing matches: {pattern}", file=sys.stderr
        )
    if not sources.entries and not sources.remote:
        print("digits-score-ray: error: no image files to score", file=sys.stderr)
        return USAGE
    try:
        ray.init(address=args.address)
        try:
            written = score_folder(
                sources,
                args.output,
                output_format=args.output_format,
                actors=args.actors,
                batch_size=args.batch_size,
                max_file_bytes=args.max_file_bytes,
            )
        finally:
            ray.shutdown()
    except KeyboardInterrupt:
        print("digits-score-ray: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        # A failed job (Ray's error, an unwritable output...): not "some files failed".
        traceback.print_exc()
        print("digits-score-ray: error: the job failed", file=sys.stderr)
        return CRASHED
    print(
        f"digits-score-ray: {written.rows} rows written to {args.output}, {written.errors} errors",
        file=sys.stderr,
    )
    return FAILED_FILES if written.errors or sources.unmatched else SCORED


if __name__ == "__main__":
    raise SystemExit(main())
