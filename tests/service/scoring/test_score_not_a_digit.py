"""`digits-score`'s `is_digit` and `not_a_digit` columns: pictures of no digit scored as such,
against a server and in process, CSV and JSON lines; empty for a model without the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from samples.uploads import encode_png
from service.model_card import ModelCard
from tests.conftest import TEN_OUTPUT_CARD
from tests.service.scoring.cli_runs import check_not_a_digit_columns, csv_rows, run_cli

Digits = tuple[np.ndarray, np.ndarray]


def test_pictures_of_no_digit_are_scored_as_such_remote_and_local(
    base_url: str,
    not_a_digit_card: ModelCard,
    clear_digits: Digits,
    non_digits: dict[str, bytes],
    tmp_path: Path,
) -> None:
    (tmp_path / "0-digit.png").write_bytes(encode_png(clear_digits[0][0]))
    for name, png in non_digits.items():
        (tmp_path / f"1-{name}.png").write_bytes(png)
    runs = {
        "remote": run_cli(str(tmp_path), "--url", base_url, "--no-progress"),
        "local": run_cli(str(tmp_path), "--local", "--no-progress"),
        "jsonl": run_cli(str(tmp_path), "--url", base_url, "--format", "jsonl", "--no-progress"),
    }
    assert all(run.returncode == 0 for run in runs.values()), runs
    rows = csv_rows(runs["remote"].stdout)
    assert rows == csv_rows(runs["local"].stdout)
    assert [row["is_digit"] for row in rows] == ["true"] + ["false"] * len(non_digits)
    for row in rows:
        check_not_a_digit_columns(row, not_a_digit_card)
    records = [json.loads(line) for line in runs["jsonl"].stdout.splitlines()]
    assert [r["is_digit"] for r in records] == [True] + [False] * len(non_digits)
    assert [f"{r['not_a_digit']:.6f}" for r in records] == [row["not_a_digit"] for row in rows]


def test_a_model_without_the_output_leaves_both_columns_empty(
    tmp_path: Path, clear_digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = clear_digits
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(encode_png(images[i]))
    monkeypatch.setenv("DIGITS_MODEL_CARD", str(TEN_OUTPUT_CARD))
    csv_run = run_cli(str(tmp_path), "--local", "--no-progress")
    jsonl_run = run_cli(str(tmp_path), "--local", "--format", "jsonl", "--no-progress")
    assert csv_run.returncode == jsonl_run.returncode == 0, csv_run.stderr
    rows = csv_rows(csv_run.stdout)
    assert [int(row["digit"]) for row in rows] == labels[:3].tolist()
    assert all(row["is_digit"] == row["not_a_digit"] == "" for row in rows), rows
    records = [json.loads(line) for line in jsonl_run.stdout.splitlines()]
    assert all(r["is_digit"] is None and r["not_a_digit"] is None for r in records), records
