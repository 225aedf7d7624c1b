"""Scoring in this process, with the runtime itself: `digits-score --local`, no server.

The same `Recognizer` the service runs (the same verification of the model, the same
preprocessing and limits), called directly: for batch jobs on one machine, or inside a
data pipeline (service/scoring/ray_pipeline.py). Needs the `serve` extra (LiteRT, Pillow,
numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from service.errors import DigitsError
from service.runtime.recognizer import Recognition, Recognizer
from service.runtime.scores import is_digit
from service.scoring.reading import FileRefusedError, option_limit, read_file
from service.scoring.results import Result


class LocalScorer:
    """Scores batches of files or image bytes with `recognizer`; safe to call from many threads."""

    def __init__(self, recognizer: Recognizer, *, max_file_bytes: int | None = None) -> None:
        self.recognizer = recognizer
        # No server's body limit bounds what is read here: `--max-file-bytes` (or its
        # default) does, so that one huge file cannot take the memory (a 300 MB file
        # took this process to 369 MiB, to be refused as an image).
        self.file_limit = option_limit(max_file_bytes)

    def score(self, paths: list[Path]) -> list[Result]:
        """One result per path, in order; a file that cannot be read, or is over the size
        limit (not read, then), is an error row."""
        results: dict[int, Result] = {}
        readable: list[int] = []
        payloads: list[bytes] = []
        for position, path in enumerate(paths):
            try:
                payloads.append(read_file(path, self.file_limit))
            except FileRefusedError as error:
                results[position] = Result(str(path), error=str(error))
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
            positions = [position for position, _ in pending]
            scored = self._scored([names[position] for position in positions], recognition)
            results.update(zip(positions, scored, strict=True))
            break
        return [results[position] for position in range(len(payloads))]

    def _scored(self, names: list[str], recognition: Recognition) -> list[Result]:
        """Rows for recognized images: the best digit and its probability, and `is_digit` by
        the settings' threshold; both not-a-digit fields are empty for a model without the
        output, as they are from a server (which says null)."""
        probabilities, not_a_digit = recognition.probabilities, recognition.not_a_digit
        count = len(probabilities)
        digits = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(count), digits]
        verdicts: list[bool | None] = [None] * count
        refusals: list[float | None] = [None] * count
        if not_a_digit is not None:
            threshold = self.recognizer.settings.not_a_digit_threshold
            verdicts = is_digit(not_a_digit, threshold, count).tolist()
            refusals = not_a_digit.tolist()
        return [
            Result(name, digit, confidence, None, verdict, refusal)
            for name, digit, confidence, verdict, refusal in zip(
                names, digits.tolist(), confidences.tolist(), verdicts, refusals, strict=True
            )
        ]

    def close(self) -> None:
        """Nothing to release: the interpreters go with the process."""
