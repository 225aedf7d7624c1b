"""What `digits-score` writes: one `Result` per file, as CSV or JSON lines; and how a file
name that is not text is written (`escape_name`), so that every file gets its row."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import IO

# The not-a-digit columns come last, so that readers of the first four by position still
# read the same columns.
COLUMNS = ("path", "digit", "confidence", "error", "is_digit", "not_a_digit")

_ESCAPE = re.compile(rb"\\(\\|x[0-9a-f]{2})")


@dataclass(frozen=True)
class Result:
    path: str  # the file's name as the OS gave it (undecodable bytes as lone surrogates)
    digit: int | None = None
    confidence: float | None = None
    error: str | None = None
    # None for a model without the not-a-digit output (it was not asked), and for errors.
    is_digit: bool | None = None
    not_a_digit: float | None = None


def escape_name(name: str) -> str:
    """`name` as it is written: as it is when its bytes are UTF-8 and it holds no `\\x`;
    otherwise each byte that is not UTF-8 as `\\xNN` and each backslash as `\\\\`. Lossless:
    a written name holding `\\x` is escaped, and `unescape_name` gives the bytes back.

    POSIX names are bytes: `os.fsdecode` carries the bytes that are not UTF-8 as lone
    surrogates, which no UTF-8 writer accepts (the CSV writer crashed on them)."""
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\\x" not in text:
        return text
    escaped = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in escaped)


def unescape_name(written: str) -> bytes:
    """The file name's bytes from a written `path` (the inverse of `escape_name`)."""
    data = written.encode("utf-8")
    if "\\x" not in written:
        return data

    def byte(match: re.Match[bytes]) -> bytes:
        return b"\\" if match[1] == b"\\" else bytes([int(match[1][1:], 16)])

    return _ESCAPE.sub(byte, data)


class Writer:
    def __init__(self, stream: IO[str], output_format: str) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
        if self.csv is not None:
            self.csv.writerow(COLUMNS)

    def write(self, results: list[Result]) -> None:
        for result in (replace(result, path=escape_name(result.path)) for result in results):
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
