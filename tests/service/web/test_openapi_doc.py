"""openapi.json and openapi.md: generated from the app, never stale, examples that run."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from service.gateway.openapi import SEVEN_PNG_BASE64
from service.model_card import ModelCard
from service.openapi_doc import build_document, main, render
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.conftest import REPO_ROOT
from tests.loopback_server import live_server

DOCUMENT = build_document()


@pytest.mark.parametrize("name", ["openapi.json", "openapi.md"])
def test_committed_files_match_the_app(name: str) -> None:
    committed = (REPO_ROOT / name).read_text(encoding="utf-8")
    assert committed == render(DOCUMENT)[name], f"{name} is stale: run `make openapi`"


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openapi.json", "openapi.md"]
    assert main(["--out", str(tmp_path), "--check"]) == 0
    assert "stale: openapi.json, openapi.md" in capsys.readouterr().err


def _operations() -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize(("method", "path", "operation"), _operations())
def test_every_operation_documents_its_error_shape(method: str, path: str, operation: dict) -> None:
    shape = "V2ErrorResponse" if path.startswith("/v2") else "ErrorResponse"
    refs = {
        status: media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
        for status, response in operation["responses"].items()
        for media in response.get("content", {}).values()
    }
    errors = {status: ref for status, ref in refs.items() if int(status) >= 400}
    assert "500" in errors
    # Readiness endpoints answer 503 with their own body; every other error has the one shape.
    assert {ref for status, ref in errors.items() if status != "503"} == {shape}
    assert "HTTPValidationError" not in refs.values()
    if "requestBody" in operation:
        assert errors.get("413") == shape
    assert re.fullmatch(r"[a-z_]+", operation["operationId"]), "named after the route function"


def test_no_framework_error_schema_left() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert {"ErrorResponse", "V2ErrorResponse", "InferRequest"} <= set(schemas)


def test_every_endpoint_has_a_section_and_a_curl_example() -> None:
    markdown = render(DOCUMENT)["openapi.md"]
    for method, path, _ in _operations():
        section = markdown.split(f"## `{method.upper()} {path}`\n", 1)[1].split("\n## ", 1)[0]
        assert "| status | meaning | body |" in section
        assert "```bash\ncurl -s " in section


def test_curl_examples_work(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    loaded_recognizer: Callable[[str | None], Recognizer],
    model_card: ModelCard,
) -> None:
    """Every curl line of openapi.md, run by curl against a real server."""
    from service.app import create_app

    assert shutil.which("curl"), "the examples are run with curl (.ci/run installs it)"
    markdown = render(DOCUMENT)["openapi.md"]
    commands = [
        block.replace("\\\n", " ") for block in re.findall(r"```bash\n(.*?)\n```", markdown, re.S)
    ]
    assert len(commands) == len(_operations())
    (tmp_path / "seven.png").write_bytes(base64.b64decode(SEVEN_PNG_BASE64))
    env = {**os.environ, "MODEL_VERSION": model_card.version}
    with live_server(create_app(make_settings(), loaded_recognizer(None))) as url:
        for command in commands:
            command = command.replace("localhost:8000", url.removeprefix("http://"))
            result = subprocess.run(
                ["bash", "-c", command + " -w '\\n%{http_code}'"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            body, status = result.stdout.rsplit("\n", 1)
            # Loading and unloading models are documented as refused.
            expected = "400" if "/v2/repository/models/" in command else "200"
            assert status == expected, (command[:80], body[:300])
            if "/v1/predict" in command:
                assert json.loads(body)["predictions"][0]["digit"] == 7
            elif "/infer" in command.split()[2]:
                outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
                assert outputs["digit"] == [7]
