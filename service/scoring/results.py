"""What `digits-score` writes: one `Result` per file, as CSV or JSON lines."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from typing import IO

# The not-a-digit columns come last, so that readers of the first four by position still
# read the same columns.
COLUMNS = ("path", "digit", "confidence", "error", "is_digit", "not_a_digit")


@dataclass(frozen=True)
class Result:
    path: str
    digit: int | None = None
    confidence: float | None = None
    error: str | None = None
    # None for a model without the not-a-digit output (it was not asked), and for errors.
    is_digit: bool | None = None
    not_a_digit: float | None = None


class Writer:
    def __init__(self, stream: IO[str], output_format: str) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
        if self.csv is not None:
            self.csv.writerow(COLUMNS)

    def write(self, results: list[Result]) -> None:
        for result in results:
            if self.csv is not None:
                self.csv.writerow(
                    [
                        result.path,
                        "" if result.digit is None else result.digit,
                        _number(result.confidence),
                        result.error or "",
                        # As JSON and Ray's CSV spell it, not Python's True.
                        "" if result.is_digit is None else str(result.is_digit).lower(),
                        _number(result.not_a_digit),
                    ]
                )
            else:
                self.stream.write(json.dumps(asdict(result)) + "\n")
        self.stream.flush()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
