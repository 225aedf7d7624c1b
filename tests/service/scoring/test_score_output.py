"""`digits-score --output` never loses an earlier result, and the exit status tells a run
that failed from files that failed (issue 24, finding 12): the real CLIs, as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from samples.uploads import encode_png
from tests.conftest import REPO_ROOT
from tests.loopback_server import free_port
from tests.service.scoring.cli_runs import csv_rows, run_cli

Digits = tuple[np.ndarray, np.ndarray]
PREVIOUS = "path,digit,confidence,error,is_digit,not_a_digit\nold.png,7,0.990000,,true,0.010000\n"
EXIT_CODES = [
    "  0    every file scored",
    "  1    some files",
    "  2    usage",
    "  3    the run failed",
]


def test_an_existing_output_is_replaced_only_with_force_and_only_when_complete(
    base_url: str, tmp_path: Path, clear_digits: Digits
) -> None:
    """A run against a server that was down replaced yesterday's scores with error rows,
    truncating the file at start. Now: refused without `--force` (one line naming it);
    with it, rows go to a temporary file renamed into place only at the end, so an
    interrupted run leaves the old file and no temporary one."""
    images, labels = clear_digits
    digit = tmp_path / "digit.png"
    digit.write_bytes(encode_png(images[0]))
    output = tmp_path / "scores.csv"
    output.write_text(PREVIOUS)
    down = f"http://127.0.0.1:{free_port()}"

    refused = run_cli(str(digit), "--url", down, "--retries", "0", "--output", str(output))
    assert output.read_text() == PREVIOUS, "the earlier result was replaced"
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == f"digits-score: error: {output} exists; --force replaces it\n"

    command = [sys.executable, "-m", "service.scoring.cli", str(digit), "--url", down]
    command += ["--retries", "3", "--backoff", "0.5", "--output", str(output), "--force"]
    waiting = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # retrying a server that is not there
    waiting.send_signal(signal.SIGINT)
    _, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 130, stderr
    assert output.read_text() == PREVIOUS, "an interrupted run replaced the earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png", "scores.csv"]

    replaced = run_cli(str(digit), "--url", base_url, "--output", str(output), "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert [row["digit"] for row in csv_rows(output.read_text())] == [str(labels[0])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png", "scores.csv"]


def test_the_exit_status_tells_a_failed_run_from_failed_files(
    tmp_path: Path, clear_digits: Digits
) -> None:
    """An output that cannot be written is 3 with one line, not a traceback and 1 (which
    says "some files failed"); both CLIs document the same statuses in --help."""
    digit = tmp_path / "digit.png"
    digit.write_bytes(encode_png(clear_digits[0][0]))
    nowhere = tmp_path / "missing-folder" / "scores.csv"
    unwritable = run_cli(str(digit), "--local", "--output", str(nowhere), "--no-progress")
    assert unwritable.returncode == 3, unwritable.stderr
    last = unwritable.stderr.splitlines()[-1]
    assert last == f"digits-score: error: cannot write {nowhere}: No such file or directory"
    assert "Traceback" not in unwritable.stderr

    ray = [sys.executable, "-m", "service.scoring.ray_pipeline"]
    helps = [run_cli("--help").stdout, _run([*ray, "--help"]).stdout]
    for text in helps:
        assert all(line in text for line in EXIT_CODES), text
    # The same block in both: one meaning per status.
    assert helps[0].split("exit status")[1] == helps[1].split("exit status")[1]

    (tmp_path / "empty").mkdir()
    nothing = _run([*ray, str(tmp_path / "empty"), "--output", str(tmp_path / "out")])
    assert nothing.returncode == 2, nothing.stderr
    assert "no image files to score" in nothing.stderr


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=environment
    )
