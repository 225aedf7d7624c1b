"""What `digits-score` writes: one `Result` per file, as CSV or JSON lines."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from typing import IO

COLUMNS = ("path", "digit", "confidence", "error")


@dataclass(frozen=True)
class Result:
    path: str
    digit: int | None = None
    confidence: float | None = None
    error: str | None = None


class Writer:
    def __init__(self, stream: IO[str], output_format: str) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
        if self.csv is not None:
            self.csv.writerow(COLUMNS)

    def write(self, results: list[Result]) -> None:
        for result in results:
            if self.csv is not None:
                confidence = "" if result.confidence is None else f"{result.confidence:.6f}"
                digit = "" if result.digit is None else result.digit
                self.csv.writerow([result.path, digit, confidence, result.error or ""])
            else:
                self.stream.write(json.dumps(asdict(result)) + "\n")
        self.stream.flush()
