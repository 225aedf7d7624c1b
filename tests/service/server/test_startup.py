"""Start-up: settings, model verification against the card, readiness, and the CLI."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.errors import ModelLoadError
from service.model_card import ModelCard, sha256_of_file
from service.runtime.recognizer import Recognizer
from service.server.cli import main
from service.settings import Settings
from tests.conftest import MODEL_CARD, REPO_ROOT

# --- settings -------------------------------------------------------------------------


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.model_card == Path("models/model.json")
    assert defaults.model_file is None
    assert (defaults.max_images, defaults.interpreters, defaults.interpreter_threads) == (256, 2, 1)
    assert (defaults.max_body_bytes, defaults.decode_threads) == (32 * 1024 * 1024, 4)
    assert (defaults.host, defaults.port, defaults.log_level) == ("0.0.0.0", 8000, "info")

    monkeypatch.setenv("DIGITS_PORT", "9000")
    monkeypatch.setenv("DIGITS_MODEL_FILE", "mnist_cnn_int8.tflite")
    monkeypatch.setenv("DIGITS_INTERPRETERS", "4")
    configured = Settings()
    assert (configured.port, configured.model_file, configured.interpreters) == (
        9000,
        "mnist_cnn_int8.tflite",
        4,
    )


def test_relative_card_path_found_from_any_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert Settings().model_card_path().resolve() == MODEL_CARD.resolve()
    monkeypatch.chdir(tmp_path)  # e.g. a container's /app without models/: the checkout's
    assert Settings().model_card_path().resolve() == MODEL_CARD.resolve()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.json").write_text("{}")
    assert Settings().model_card_path() == Path("models/model.json")  # the working directory wins


# --- verification against the card ----------------------------------------------------


@pytest.fixture
def model_copy(tmp_path: Path, model_card: ModelCard) -> Path:
    """A writable copy of the committed card and its .tflite files; returns the card path."""
    for artifact in model_card.artifacts.values():
        if artifact.format == "tflite":
            (tmp_path / artifact.file).write_bytes((MODEL_CARD.parent / artifact.file).read_bytes())
    (tmp_path / "model.json").write_text(MODEL_CARD.read_text())
    return tmp_path / "model.json"


def _edit_card(card_path: Path, edit: Callable[[dict], None]) -> None:
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))


def _load(card_path: Path, model_file: str | None = None) -> str:
    """Load and expect failure; the one-line message."""
    with pytest.raises(ModelLoadError) as failure:
        Recognizer(Settings(model_card=card_path, model_file=model_file)).load()
    message = str(failure.value)
    assert "\n" not in message
    return message


def test_the_copy_loads(model_copy: Path) -> None:
    recognizer = Recognizer(Settings(model_card=model_copy))
    recognizer.load()
    assert recognizer.state == "ready"


def test_missing_card(tmp_path: Path) -> None:
    assert "cannot read model card" in _load(tmp_path / "nope.json")


def test_card_that_is_not_a_card(model_copy: Path) -> None:
    model_copy.write_text('{"name": "x"}')
    assert "is not a valid model card" in _load(model_copy)
    model_copy.write_text("not json at all")
    assert "is not a valid model card" in _load(model_copy)


def test_missing_model_file(model_copy: Path, model_card: ModelCard) -> None:
    (model_copy.parent / model_card.artifacts[model_card.serving_default].file).unlink()
    assert "cannot read model file" in _load(model_copy)


def test_model_file_that_does_not_match_the_sha256(model_copy: Path, model_card: ModelCard) -> None:
    path = model_copy.parent / model_card.artifacts[model_card.serving_default].file
    path.write_bytes(path.read_bytes() + b"\0")
    message = _load(model_copy)
    assert "sha256" in message and str(path) in message


def test_corrupt_model_listed_with_its_own_sha256(model_copy: Path, model_card: ModelCard) -> None:
    key = model_card.serving_default
    path = model_copy.parent / model_card.artifacts[key].file
    path.write_bytes(b"TFL3 but not really a flatbuffer" * 10)

    def match(card: dict) -> None:
        card["artifacts"][key].update(sha256=sha256_of_file(path), size_bytes=path.stat().st_size)

    _edit_card(model_copy, match)
    assert "cannot open" in _load(model_copy)


@pytest.mark.parametrize(
    ("tensor", "field", "value"),
    [
        ("input", "shape", [32, 32, 1]),
        ("input", "dtype", "uint8"),
        ("output", "shape", [12]),  # neither 10 digits nor 10 and not-a-digit
        ("output", "dtype", "float16"),
    ],
)
def test_tensor_spec_that_does_not_match_the_card(
    model_copy: Path, model_card: ModelCard, tensor: str, field: str, value: object
) -> None:
    key = model_card.serving_default
    _edit_card(model_copy, lambda card: card["artifacts"][key][tensor].update({field: value}))
    assert f"{tensor} tensor of" in _load(model_copy)


def test_quantization_that_does_not_match_the_card(model_copy: Path, model_card: ModelCard) -> None:
    key, artifact = next(
        (k, a) for k, a in model_card.artifacts.items() if a.input and a.input.dtype == "int8"
    )
    assert artifact.input is not None and artifact.input.quantization is not None
    scale = artifact.input.quantization.scale
    _edit_card(
        model_copy,
        lambda card: card["artifacts"][key]["input"]["quantization"].update(scale=scale * 1.01),
    )
    assert "does not match its card" in _load(model_copy, artifact.file)
    _edit_card(model_copy, lambda card: card["artifacts"][key]["input"].update(quantization=None))
    assert "does not match its card" in _load(model_copy, artifact.file)


def test_model_file_must_be_a_tflite_listed_in_the_card(
    model_copy: Path, model_card: ModelCard
) -> None:
    assert "is not listed" in _load(model_copy, "other.tflite")
    h5 = next((a.file for a in model_card.artifacts.values() if a.format != "tflite"), None)
    if h5 is not None:
        assert "not a .tflite" in _load(model_copy, h5)


def test_selected_model_file_is_served(model_copy: Path, tflite_files: list[str]) -> None:
    for model_file in tflite_files:
        recognizer = Recognizer(Settings(model_card=model_copy, model_file=model_file))
        recognizer.load()
        assert recognizer.model.artifact.file == model_file


# --- readiness ------------------------------------------------------------------------


def test_not_ready_while_loading(
    make_settings: Callable[..., Settings], held_model_load: threading.Event
) -> None:
    release = held_model_load
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "loading"
        for request in (
            client.post("/v1/predict", json={"images": [{"data": "eA=="}]}),
            client.get("/v1/model"),
        ):
            assert request.status_code == 503
            assert request.json()["error"]["code"] == "model_not_ready"

        release.set()
        assert _wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/v1/model").status_code == 200


def test_not_ready_when_loading_failed(tmp_path: Path) -> None:
    settings = Settings(model_card=tmp_path / "missing.json")
    with TestClient(create_app(settings)) as client:
        assert _wait_for(lambda: client.get("/readyz").json()["status"] == "failed")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "cannot read model card" in ready.json()["detail"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/model").status_code == 503


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# --- the command line -----------------------------------------------------------------


def _serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    return subprocess.run(
        [sys.executable, "-m", "service"],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DIGITS_MODEL_CARD": "/nonexistent/model.json"}, "cannot read model card"),
        ({"DIGITS_MODEL_FILE": "nope.tflite"}, "is not listed"),
        ({"DIGITS_PORT": "not-a-port"}, "DIGITS_PORT"),
    ],
)
def test_cli_exits_1_with_one_line_on_a_bad_start(env: dict[str, str], expected: str) -> None:
    result = _serve(env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("digits: error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_a_failed_start_leaves_the_garbage_collector_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Start-up turns the collector off (service/server/cli.py); a start that ends early
    # must not leave a process (here: pytest's) that never collects again.
    monkeypatch.setenv("DIGITS_PORT", "not-a-port")
    assert gc.isenabled()
    assert main([]) == 1
    assert "DIGITS_PORT" in capsys.readouterr().err
    assert gc.isenabled()


def test_cli_exits_1_on_a_tampered_model(model_copy: Path, model_card: ModelCard) -> None:
    path = model_copy.parent / model_card.artifacts[model_card.serving_default].file
    path.write_bytes(path.read_bytes()[:-1])
    result = _serve({"DIGITS_MODEL_CARD": str(model_copy)})
    assert result.returncode == 1
    assert result.stderr.startswith("digits: error: model file") and "sha256" in result.stderr


def test_cli_serves_the_model() -> None:
    with socket.socket() as probe:  # a free port; a tiny race is acceptable in a test
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    env.update(DIGITS_HOST="127.0.0.1", DIGITS_PORT=str(port), DIGITS_LOG_LEVEL="warning")
    server = subprocess.Popen(
        [sys.executable, "-m", "service"], env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                return False

        assert _wait_for(ready, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_help_lists_the_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"DIGITS_{name.upper()}" in result.stdout
