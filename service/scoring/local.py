"""Scoring in this process, with the runtime itself: `digits-score --local`, no server.

The same `Recognizer` the service runs (the same verification of the model, the same
preprocessing and limits), called directly: for batch jobs on one machine, or inside a
data pipeline (service/scoring/ray_pipeline.py). Needs the `serve` extra (LiteRT, Pillow,
numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from service.errors import DigitsError
from service.runtime.recognizer import Recognizer
from service.scoring.results import Result


class LocalScorer:
    """Scores batches of files or image bytes with `recognizer`; safe to call from many threads."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def score(self, paths: list[Path]) -> list[Result]:
        """One result per path, in order; a file that cannot be read is an error row."""
        results: dict[int, Result] = {}
        readable: list[int] = []
        payloads: list[bytes] = []
        for position, path in enumerate(paths):
            try:
                payloads.append(path.read_bytes())
            except OSError as error:
                results[position] = Result(str(path), error=f"cannot read: {error.strerror}")
            else:
                readable.append(position)
        scored = self.score_bytes([str(paths[position]) for position in readable], payloads)
        results.update(zip(readable, scored, strict=True))
        return [results[position] for position in range(len(paths))]

    def score_bytes(self, names: Sequence[str], payloads: Sequence[bytes]) -> list[Result]:
        """One result per encoded image, in order; an image the runtime refuses (not an image,
        too large, ...) is an error row with the runtime's message, the others are scored."""
        results: dict[int, Result] = {}
        pending = list(enumerate(payloads))
        while pending:
            try:
                recognition = self.recognizer.recognize([data for _, data in pending])
            except DigitsError as error:
                if error.index is None:
                    for position, _ in pending:
                        results[position] = Result(names[position], error=error.message)
                    break
                # One bad image: report it, run the others again.
                position, _ = pending.pop(error.index)
                results[position] = Result(names[position], error=error.message)
                continue
            for (position, _), row in zip(pending, recognition.probabilities, strict=True):
                digit = int(row.argmax())
                results[position] = Result(names[position], digit, float(row[digit]))
            break
        return [results[position] for position in range(len(payloads))]

    def close(self) -> None:
        """Nothing to release: the interpreters go with the process."""
