"""The benchmark scripts run (CI-sized): quick in-process parts, and the load generator
against the real server. Speed itself is measured by `make bench`, never asserted here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench import run
from bench.images import digits_body, mnist_pngs
from bench.loadgen import post_request, run_load
from bench.servers import HOST, free_port, running
from tests.conftest import MODEL_CARD


def test_quick_in_process_run_writes_results(tmp_path: Path) -> None:
    assert run.main(["--quick", "--no-http", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "latest.json").read_text())
    for batches in results["floor"].values():
        assert batches["1"]["images_per_s"] > 0 and batches["256"]["images_per_s"] > 0
    assert results["pipeline"]["png28"]["total_us"] > results["pipeline"]["png28"]["preprocess_us"]
    assert results["pipeline"]["jpeg300"]["images"] >= 32
    assert "**Floor**" in (tmp_path / "latest.md").read_text()
    assert (tmp_path / "latest.png").read_bytes()[:4] == b"\x89PNG"


def test_load_generator_against_the_real_server(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "DIGITS_MODEL_CARD": str(MODEL_CARD),
        "DIGITS_HOST": HOST,
        "DIGITS_PORT": str(port),
        "DIGITS_WORKERS": "1",
        "DIGITS_ACCESS_LOG": "false",
    }
    payloads = [
        post_request(HOST, port, "/v1/predict", digits_body([png])) for png in mnist_pngs(8)
    ]
    command = [sys.executable, "-m", "service"]
    with running("test", command, port, env={**os.environ, **env}, log_dir=tmp_path) as server:
        assert server.ready_seconds > 0 and server.rss_mb() > 0
        result = run_load(HOST, port, payloads, concurrency=4, requests=60, time_limit=20)
        bad = [post_request(HOST, port, "/v1/predict", b'{"images": []}')]
        refused = run_load(HOST, port, bad, concurrency=1, requests=3, time_limit=20)
    assert (result.requests, result.errors) == (60, 0)
    assert 0 < result.p50_ms <= result.p99_ms
    assert refused.errors == 3 and "HTTP 422" in (refused.first_error or "")
