"""The steps `digits-score-ray` runs on Ray's workers (service/scoring/ray_pipeline.py
assembles them): reading local files within a byte limit, scoring with one verified model
per actor, counting error rows. Neither Ray nor the runtime is imported at module level:
the actors import the runtime, the driver only names these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.scoring.reading import FileLimit, FileRefusedError, read_file
from service.scoring.results import unescape_name

if TYPE_CHECKING:
    import pyarrow as pa


class DigitScorer:
    """The `map_batches` callable: one verified model per Ray actor. Takes `path` and
    `bytes` columns, and optionally `error`: a row that has one (a file that could not be
    read) is passed on as an error row, not scored."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        from service.runtime.recognizer import Recognizer
        from service.scoring.local import LocalScorer

        # The pipeline's parallelism is Ray's actors; one decode thread and one
        # interpreter each keeps an actor on the one CPU Ray reserved for it.
        options = {"decode_threads": 1, "interpreters": 1, **(settings or {})}
        self.scorer = LocalScorer(Recognizer.open(**options))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import pyarrow as pa

        from service.scoring.results import Result

        names = [str(path) for path in batch["path"]]
        refusals = list(batch["error"]) if "error" in batch else [None] * len(names)
        readable = [position for position, refusal in enumerate(refusals) if refusal is None]
        scored = iter(
            self.scorer.score_bytes(
                [names[p] for p in readable], [bytes(batch["bytes"][p]) for p in readable]
            )
        )
        results = [
            next(scored) if refusal is None else Result(name, error=str(refusal))
            for name, refusal in zip(names, refusals, strict=True)
        ]
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


def read_files(batch: pa.Table, *, max_bytes: int, source: str) -> pa.Table:
    """`path` (a local file's name, as `escape_name` writes it) and `error` (set: not to
    be read) in; `path`, `bytes`, `error` out. A file over the limit, a FIFO, a device or
    an unreadable file gets its error here instead of failing the job, and is not read."""
    import os

    import pyarrow as pa

    limit = FileLimit(max_bytes, source)
    data: list[bytes] = []
    errors: list[str | None] = []
    names, refusals = batch.column("path").to_pylist(), batch.column("error").to_pylist()
    for name, error in zip(names, refusals, strict=True):
        if error is None:
            try:
                data.append(read_file(Path(os.fsdecode(unescape_name(name))), limit))
            except FileRefusedError as refusal:
                error = str(refusal)
        if error is not None:
            data.append(b"")
        errors.append(error)
    return pa.table(
        {
            "path": batch.column("path"),
            # large_binary: 64-bit offsets, as a batch may hold more than 2 GiB of files.
            "bytes": pa.array(data, pa.large_binary()),
            "error": pa.array(errors, pa.string()),
        }
    )


def count_errors(batch: pa.Table) -> dict[str, list[int]]:
    """The rows of `batch` with an error, as a one-row batch (summed over the dataset)."""
    return {"errors": [batch.num_rows - batch.column("error").null_count]}
