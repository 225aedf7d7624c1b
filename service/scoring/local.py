"""Scoring in this process, with the runtime itself: `digits-score --local`, no server.

The same `Recognizer` the service runs (the same verification of the model, the same
preprocessing and limits), called directly: for batch jobs on one machine, or inside a
data pipeline. Needs the `serve` extra (LiteRT, Pillow, numpy).
"""

from __future__ import annotations

from pathlib import Path

from service.errors import DigitsError
from service.runtime.recognizer import Recognizer
from service.scoring.results import Result


class LocalScorer:
    """Scores batches of files with `recognizer`; safe to call from many threads."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def score(self, paths: list[Path]) -> list[Result]:
        results: dict[int, Result] = {}
        pending: list[tuple[int, bytes]] = []
        for position, path in enumerate(paths):
            try:
                pending.append((position, path.read_bytes()))
            except OSError as error:
                results[position] = Result(str(path), error=f"cannot read: {error.strerror}")
        while pending:
            try:
                recognition = self.recognizer.recognize([data for _, data in pending])
            except DigitsError as error:
                if error.index is None:
                    for position, _ in pending:
                        results[position] = Result(str(paths[position]), error=error.message)
                    break
                # One bad image: report it, run the others again.
                position, _ = pending.pop(error.index)
                results[position] = Result(str(paths[position]), error=error.message)
                continue
            for (position, _), row in zip(pending, recognition.probabilities, strict=True):
                digit = int(row.argmax())
                results[position] = Result(str(paths[position]), digit, float(row[digit]))
            break
        return [results[position] for position in range(len(paths))]

    def close(self) -> None:
        """Nothing to release: the interpreters go with the process."""
