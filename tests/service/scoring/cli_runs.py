"""Running `digits-score` as users do (a subprocess) and reading what it writes."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from service.model_card import ModelCard
from tests.conftest import REPO_ROOT


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.scoring.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_not_a_digit_columns(row: dict[str, str], card: ModelCard) -> None:
    """A scored row's `is_digit` and `not_a_digit`: empty for a model without the output."""
    if card.not_a_digit is None:
        assert row["is_digit"] == row["not_a_digit"] == "", row
    else:
        assert row["is_digit"] == ("true" if float(row["not_a_digit"]) < 0.5 else "false"), row


# Runs the command given after the peak file, and writes that child's peak RSS (KiB) there.
# A small process between: a child's peak counts what it held before exec, and a child of
# the test process would start from the test process's size.
_PEAK_WRAPPER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:], timeout=float(sys.argv[1].split(":")[0]))
with open(sys.argv[1].split(":", 1)[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)
"""


def run_cli_with_peak(
    *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`run_cli`, and the CLI process's peak RSS in bytes."""
    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak"
        command = [sys.executable, "-m", "service.scoring.cli", *args]
        result = subprocess.run(
            [sys.executable, "-c", _PEAK_WRAPPER, f"{timeout}:{peak}", *command],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        return result, int(peak.read_text()) * 1024  # KiB on Linux


def name_bytes(written: str) -> bytes:
    """A file name's bytes from a written `path`, by the documented rule (README): a name
    holding `\\x` is escaped, each `\\xNN` a byte, each `\\\\` a backslash."""
    data = written.encode("utf-8")
    if "\\x" not in written:
        return data
    return re.sub(
        rb"\\(\\|x[0-9a-f]{2})",
        lambda m: b"\\" if m[1] == b"\\" else bytes([int(m[1][1:], 16)]),
        data,
    )
