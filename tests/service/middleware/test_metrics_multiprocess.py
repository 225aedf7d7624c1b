"""GET /metrics on a real multi-process server: every scrape reports the whole server.

Each request and each scrape opens its own connection, so the kernel hands them to
whichever worker accepts first: a scrape that reported only its own worker's counters
would see a fraction of the requests, a different one each time (issue 10, item 2).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from samples.uploads import encode_png, load_test_digits
from tests.subprocess_server import ServerProcess, server_process

WORKERS = 2
HEALTH_REQUESTS, PREDICTIONS, SCRAPES = 200, 40, 8
IMAGES_PER_PREDICTION = 2
REQUESTS_TOTAL = "digits_http_requests_total"
HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}
PREDICT = {"method": "POST", "route": "/v1/predict", "status": "200"}


def _scrape(url: str) -> dict[str, list[Sample]]:
    response = httpx.get(url + "/metrics", timeout=30)  # a new connection: any worker
    assert response.status_code == 200
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def _value(metrics: dict[str, list[Sample]], name: str, **labels: str) -> float:
    samples = [s for family in metrics.values() for s in family if s.name == name]
    return sum(s.value for s in samples if labels.items() <= s.labels.items())


def _send_traffic(server: ServerProcess, health: int, predictions: int) -> None:
    """`health` GET /healthz and `predictions` POST /v1/predict, each on its own connection,
    from several threads at once so that every worker gets some."""
    images, _ = load_test_digits(IMAGES_PER_PREDICTION)
    data = [{"data": base64.b64encode(encode_png(image)).decode()} for image in images]
    body = json.dumps({"images": data}).encode()

    def get_health(_: int) -> int:
        return httpx.get(server.url + "/healthz", timeout=60).status_code

    def predict(_: int) -> int:
        headers = {"content-type": "application/json"}
        return httpx.post(
            server.url + "/v1/predict", content=body, headers=headers, timeout=60
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = [*pool.map(get_health, range(health)), *pool.map(predict, range(predictions))]
    assert statuses == [200] * (health + predictions)


def _assert_every_scrape_counts(server: ServerProcess, health: int, predictions: int) -> None:
    seen = []
    for _ in range(SCRAPES):
        metrics = _scrape(server.url)
        seen.append(
            (
                _value(metrics, REQUESTS_TOTAL, **HEALTHZ),
                _value(metrics, REQUESTS_TOTAL, **PREDICT),
                _value(metrics, "digits_http_request_duration_seconds_count", **HEALTHZ),
                _value(
                    metrics, "digits_http_request_duration_seconds_bucket", **PREDICT, le="+Inf"
                ),
                _value(metrics, "digits_images_per_request_count"),
                _value(metrics, "digits_images_per_request_sum"),
            )
        )
    images = predictions * IMAGES_PER_PREDICTION
    expected = (health, predictions, health, predictions, predictions, images)
    assert seen == [expected] * SCRAPES


def test_every_scrape_counts_the_requests_of_every_worker(tmp_path: Path) -> None:
    # TMPDIR: the server's private metrics folder must be made (and removed) in the temp dir.
    env = {"DIGITS_WORKERS": str(WORKERS), "TMPDIR": str(tmp_path)}
    with server_process(env) as server:
        _send_traffic(server, HEALTH_REQUESTS, PREDICTIONS)
        _assert_every_scrape_counts(server, HEALTH_REQUESTS, PREDICTIONS)
        metrics = _scrape(server.url)
        assert _value(metrics, "digits_worker_processes") == WORKERS
        assert _value(metrics, "digits_model_ready") == 1
        (folder,) = tmp_path.glob("digits-metrics-*")
        # Each forked worker writes its own files, named by its process id (which the
        # metrics read once per process, not at every value: service/middleware/metrics.py).
        writers = {path.stem.rpartition("_")[2] for path in folder.glob("histogram_*.db")}
        assert len(writers) == WORKERS and str(server.process.pid) not in writers
        server.process.terminate()
        assert server.process.wait(timeout=60) == 0
    assert not folder.exists()


def test_a_configured_folder_is_cleaned_at_start_and_dead_workers_are_not_live(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "metrics"
    env = {"DIGITS_WORKERS": str(WORKERS), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with server_process(env) as server:
        _send_traffic(server, 30, 0)
    # The next server in the same folder starts from zero: nothing left from the last one.
    with server_process(env) as server:
        _send_traffic(server, 50, 6)
        _assert_every_scrape_counts(server, 50, 6)
        writers = {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("counter_*.db")}
        assert len(writers) == WORKERS, "the traffic did not reach every worker"
        victim = min(writers)

        os.kill(victim, signal.SIGKILL)
        # The supervisor replaces it (service/server/supervisor.py): the dead one is no
        # longer live, the new one is, and the gauge counts the live ones.
        deadline = time.monotonic() + 30
        while True:
            live = {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("gauge_livesum_*.db")}
            if victim not in live and len(live) == WORKERS:
                break
            assert time.monotonic() < deadline, f"live gauge files of {live}"
            time.sleep(0.05)
        assert _value(_scrape(server.url), "digits_worker_processes") == WORKERS
        # The dead worker's requests still count: a counter that fell would read as a reset.
        _assert_every_scrape_counts(server, 50, 6)


def test_the_folder_of_a_killed_server_is_removed_by_the_next_one(tmp_path: Path) -> None:
    env = {"DIGITS_WORKERS": str(WORKERS), "TMPDIR": str(tmp_path)}
    with server_process(env) as server:
        (abandoned,) = tmp_path.glob("digits-metrics-*")
        server.process.kill()  # no clean-up; its workers get SIGTERM (PR_SET_PDEATHSIG)
        server.process.wait(timeout=30)
    # The folder is in use until the server's last worker has exited.
    lock = os.open(abandoned / "owner.lock", os.O_RDWR)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the killed server's workers did not exit"
                time.sleep(0.05)
    finally:
        os.close(lock)
    with server_process(env):
        (folder,) = tmp_path.glob("digits-metrics-*")
        assert folder != abandoned
