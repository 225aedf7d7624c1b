"""The soak script, CI-sized: the same code as the 100k run, 2,000 requests, zero errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.soak import request_mix
from tests.conftest import REPO_ROOT

REQUESTS = 2_000


def test_soak_run_has_no_errors(tmp_path: Path) -> None:
    arguments = ["--requests", str(REQUESTS), "--concurrency", "16", "--time-limit", "300"]
    arguments += ["--max-rss-growth", "0.5", "--out", str(tmp_path)]  # a short run: lenient
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["errors"] == 0 and report["first_errors"] == []
    assert report["completed"] == REQUESTS and not report["time_limited"]
    # The bad inputs were sent and got their 4xx; everything else its 200.
    assert set(report["statuses"]) == {"200", "422"}
    assert set(report["kinds"]) == {request.kind for request in request_mix()}
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert report["rss_start_mib"] > 0 and report["rss_end_mib"] > 0
    assert (tmp_path / "soak.md").read_text().startswith("# Soak test")
