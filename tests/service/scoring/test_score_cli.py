"""`digits-score`: real files, some broken, scored by the CLI against a real server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from samples.uploads import encode_jpeg, encode_png, paper_photo
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from service.scoring.results import COLUMNS
from service.settings import Settings
from tests.conftest import REPO_ROOT
from tests.loopback_server import free_port, live_server
from tests.service.scoring.cli_runs import check_not_a_digit_columns, csv_rows, run_cli
from tests.subprocess_server import server_process

Digits = tuple[np.ndarray, np.ndarray]


@pytest.fixture
def tree(tmp_path: Path, clear_digits: Digits) -> tuple[Path, dict[str, int | None]]:
    """Image files in nested folders, a few broken; file → expected digit (None: an error)."""
    images, labels = clear_digits
    rng = np.random.default_rng(3)
    expected: dict[str, int | None] = {}

    def put(relative: str, data: bytes, digit: int | None) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[str(path)] = digit

    for i in range(6):
        put(f"scans/{i:02d}.png", encode_png(images[i]), int(labels[i]))
    put("scans/03b-truncated.png", encode_png(images[6])[:60], None)  # amid a batch
    for i in range(6, 10):
        photo = encode_jpeg(paper_photo(images[i], rng), quality=85)
        put(f"scans/photos/{i:02d}.jpg", photo, int(labels[i]))
    blank = io.BytesIO()
    Image.new("L", (40, 40), 200).save(blank, format="PNG")
    put("scans/photos/blank.png", blank.getvalue(), None)
    (tmp_path / "scans" / "notes.txt").write_text("not an image: skipped in folders")
    return tmp_path, expected


def test_scores_a_folder_reporting_broken_files(
    base_url: str, tree: tuple[Path, dict[str, int | None]], tmp_path: Path, model_card: ModelCard
) -> None:
    root, expected = tree
    out = tmp_path / "scores.csv"
    result = run_cli(
        str(root / "scans"),
        *("--url", base_url, "--batch-size", "4", "--concurrency", "2", "--output", str(out)),
    )

    assert result.returncode == 1, result.stderr  # some files could not be scored
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    rows = csv_rows(out.read_text())
    assert [row["path"] for row in rows] == sorted(expected)  # each file once, in order
    for row in rows:
        digit = expected[row["path"]]
        if digit is None:
            assert row["digit"] == row["confidence"] == "" and row["error"], row
            assert row["is_digit"] == row["not_a_digit"] == "", row
        else:
            assert (int(row["digit"]), row["error"]) == (digit, ""), row
            assert 0 < float(row["confidence"]) <= 1
            check_not_a_digit_columns(row, model_card)
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert "cannot decode image" in errors["03b-truncated.png"]
    assert "no digit found" in errors["blank.png"]
    assert "10 images scored, 2 errors" in result.stderr
    assert "images/s" in result.stderr
    assert "error: " + str(root / "scans" / "03b-truncated.png") in result.stderr


def test_local_mode_scores_the_same_without_a_server(
    base_url: str, tree: tuple[Path, dict[str, int | None]], tmp_path: Path
) -> None:
    """`--local` runs the runtime in process: the same rows as through the server."""
    root, _ = tree
    args = (str(root / "scans"), "--batch-size", "4", "--concurrency", "2")
    remote = run_cli(*args, "--url", base_url, "--output", str(tmp_path / "remote.csv"))
    # No server at this URL: --local must not need one.
    local = run_cli(
        *args, "--local", "--url", "http://127.0.0.1:9", "--output", str(tmp_path / "local.csv")
    )
    assert (local.returncode, remote.returncode) == (1, 1), local.stderr
    local_rows, remote_rows = (
        csv_rows((tmp_path / f"{n}.csv").read_text()) for n in ("local", "remote")
    )
    assert local_rows == remote_rows
    assert "10 images scored, 2 errors" in local.stderr


def test_local_mode_with_a_missing_model_fails_before_scoring(
    tree: tuple[Path, dict[str, int | None]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    monkeypatch.setenv("DIGITS_MODEL_CARD", str(tmp_path / "nowhere" / "model.json"))
    result = run_cli(str(root / "scans"), "--local")
    assert result.returncode == 2
    assert "digits-score: error:" in result.stderr and "model.json" in result.stderr
    assert result.stdout == ""


def test_files_and_globs_to_jsonl(base_url: str, tree: tuple[Path, dict[str, int | None]]) -> None:
    root, expected = tree
    named = root / "scans" / "00.png"
    odd_suffix = root / "digit.bin"  # named explicitly: scored whatever its suffix
    odd_suffix.write_bytes(named.read_bytes())
    pattern = str(root / "**" / "0[45].png")
    result = run_cli(
        str(named),
        str(odd_suffix),
        pattern,
        "--url",
        base_url,
        "--format",
        "jsonl",
        "--no-progress",
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(record) == list(COLUMNS) for record in records)
    paths = [str(named), str(odd_suffix), str(root / "scans/04.png"), str(root / "scans/05.png")]
    assert [r["path"] for r in records] == paths
    assert [r["digit"] for r in records] == [expected[str(named)]] * 2 + [
        expected[p] for p in paths[2:]
    ]
    assert all(r["error"] is None for r in records)


def test_missing_paths(base_url: str, tree: tuple[Path, dict[str, int | None]]) -> None:
    root, _ = tree
    nothing = run_cli(str(root / "nope"), str(root / "*.gif"), "--url", base_url)
    assert nothing.returncode == 2
    assert "nothing matches: " + str(root / "*.gif") in nothing.stderr
    some = run_cli(str(root / "nope.png"), str(root / "scans" / "00.png"), "--url", base_url)
    assert some.returncode == 1 and len(csv_rows(some.stdout)) == 1


def test_waits_for_a_server_that_is_not_up_yet(
    tree: tuple[Path, dict[str, int | None]],
    make_settings: Callable[..., Settings],
    loaded_recognizer: Callable[[str | None], Recognizer],
) -> None:
    """Connection refused, then a server: retried with backoff, nothing lost."""
    from service.app import create_app

    root, expected = tree
    port = free_port()
    command = [sys.executable, "-m", "service.scoring.cli", str(root / "scans" / "photos")]
    command += ["--url", f"http://127.0.0.1:{port}", "--backoff", "0.2", "--retries", "8"]
    scorer = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # a few refused connections
        assert scorer.poll() is None
        with live_server(create_app(make_settings(), loaded_recognizer(None)), port=port):
            stdout, _ = scorer.communicate(timeout=60)
    finally:
        scorer.kill()
    rows = csv_rows(stdout)
    assert [r["path"] for r in rows] == sorted(p for p in expected if "/photos/" in p)
    for row in rows:  # blank.png is an error (exit status 1); the rest scored
        digit = expected[row["path"]]
        assert row["digit"] == ("" if digit is None else str(digit)), row
    assert scorer.returncode == 1


def test_retries_503_while_the_model_loads(
    tree: tuple[Path, dict[str, int | None]],
    make_settings: Callable[..., Settings],
    held_model_load: threading.Event,
) -> None:
    from service.app import create_app

    root, expected = tree
    release = held_model_load
    app = create_app(make_settings())
    with live_server(app) as url:
        files = [str(root / "scans" / f"0{i}.png") for i in range(3)]
        scoring = threading.Thread(target=lambda: results.append(run_cli(*files, "--url", url)))
        results: list[subprocess.CompletedProcess[str]] = []
        scoring.start()
        try:
            deadline = time.monotonic() + 30
            while _count_503(app) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            release.set()
        scoring.join(timeout=60)
    (result,) = results
    assert _count_503(app) >= 1  # the CLI did meet a loading model
    assert result.returncode == 0, result.stderr
    assert [int(row["digit"]) for row in csv_rows(result.stdout)] == [expected[f] for f in files]


def _count_503(app: object) -> float:
    registry = app.state.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(
        "digits_http_requests_total", {"method": "POST", "route": "/v1/predict", "status": "503"}
    )
    return value or 0.0


def test_the_client_imports_neither_tensorflow_nor_the_server() -> None:
    code = "import json, sys, service.scoring.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    top_level = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not top_level & {"tensorflow", "keras", "numpy", "PIL", "fastapi", "ai_edge_litert"}


def _predict_requests(metrics_text: str) -> dict[str, float]:
    """`/v1/predict` requests the server answered, by status, from its `/metrics` page."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "digits_http_requests_total" and (
                sample.labels.get("route") == "/v1/predict"
            ):
                counts[sample.labels["status"]] = sample.value
    return counts


def test_batches_over_the_servers_limit_are_split(tmp_path: Path, clear_digits: Digits) -> None:
    """`--batch-size 10` against a real server taking at most 4 images per request: the
    CLI reads the limit the server publishes (`GET /v1/model`), says so once, and scores
    every image, none refused."""
    images, labels = clear_digits
    expected = {}
    for i in range(25):  # batches of 10, 10 and 5
        path = tmp_path / f"{i:02d}.png"
        path.write_bytes(encode_png(images[i]))
        expected[str(path)] = int(labels[i])
    env = {"DIGITS_MAX_IMAGES": "4", "DIGITS_WORKERS": "1"}  # one process: one /metrics
    with server_process(env) as server:
        result = run_cli(
            str(tmp_path), "--url", server.url, "--batch-size", "10", "--concurrency", "2"
        )
        requests = _predict_requests(httpx.get(server.url + "/metrics", timeout=10).text)

    assert result.returncode == 0, result.stderr
    rows = csv_rows(result.stdout)
    assert {row["path"]: int(row["digit"]) for row in rows} == expected
    assert [row["path"] for row in rows] == sorted(expected)
    notice = "digits-score: the server takes at most 4 images per request; sending batches of 4"
    assert result.stderr.count(notice) == 1, result.stderr
    assert "25 images scored, 0 errors" in result.stderr
    # Every batch split up front: 10 + 10 + 5 images in requests of at most 4, 3 + 3 + 2.
    assert requests.get("422", 0) == 0, requests
    assert requests.get("200") == 8, requests


@pytest.mark.parametrize(
    ("published", "sizes"),
    [
        ({"limits": {"max_images": 4}}, [4, 4, 2]),  # split up front
        ({"card": {}}, [10]),  # an older server that does not say: sent as it is
        (None, [10]),  # no /v1/model at all (a proxy's 404)
    ],
)
def test_the_published_limit_splits_batches_and_refusals_are_reported_not_looped_on(
    tmp_path: Path, published: dict | None, sizes: list[int]
) -> None:
    """Against a server that refuses every batch (422, no image named): each image gets
    that error once, none is dropped, and batches follow the limit the server publishes."""
    from service.scoring.remote import HttpScorer

    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404) if published is None else httpx.Response(200, json=published)
        sent.append(len(json.loads(request.content)["images"]))
        message = f"images: at most 4 images per request, got {sent[-1]}"
        return httpx.Response(422, json={"error": {"code": "invalid_request", "message": message}})

    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(b"any bytes: the server never looks")
    scorer = HttpScorer("http://digits.test", timeout=5, retries=0, backoff=0)
    scorer.client = httpx.Client(transport=httpx.MockTransport(answer))

    results = scorer.score(paths)

    assert [r.path for r in results] == [str(p) for p in paths]
    assert all(r.digit is None and r.error and "at most 4 images" in r.error for r in results)
    assert sent == sizes
