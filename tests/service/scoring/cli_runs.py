"""Running `digits-score` as users do (a subprocess) and reading what it writes."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

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
