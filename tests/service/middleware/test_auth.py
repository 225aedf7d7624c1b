"""`DIGITS_API_KEY`: off by default; when set, every `/v1/*` and `/v2/*` operation
(except `/v2/health/*`) needs the key, and everything else stays open."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.app import DigitsApp
from service.settings import Settings
from service.web.operation import Rules
from tests.subprocess_server import REPO_ROOT, free_port

KEY = "s3cret-key-for-tests-0123456789"
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json", "/metrics", "/v2/health/ready")


@pytest.fixture
def keyed(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(api_key=KEY)) as client:
        yield client


def _rules(method: str, path: str) -> Rules:
    """The rules the gateway serves `method path` under (service/gateway/table.py)."""
    return DigitsApp.table.match(method, path)[1]


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, concrete path) in the app's OpenAPI, path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in paths.items()
        for method in operations
    ]


def test_off_by_default(client: TestClient) -> None:
    assert client.get("/v1/model").status_code == 200


def test_every_model_operation_needs_the_key(keyed: TestClient) -> None:
    protected = [(m, p) for m, p in _operations(keyed) if _rules(m, p).needs_key]
    assert {"/v1/predict", "/v1/model"} <= {p for _, p in protected}
    for method, path in protected:
        response = keyed.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()["error"]
        if _rules(method, path).protocol == "v2":  # the Open Inference Protocol's flat shape
            assert error.startswith("missing API key"), (path, error)
        else:
            assert error["code"] == "unauthorized", (path, error)
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_metrics_docs_and_the_page_stay_open(keyed: TestClient) -> None:
    for path in (*OPEN_PATHS, "/"):
        assert keyed.get(path).status_code != 401, path
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer  {KEY} "},
        {"X-API-Key": KEY},
    ],
)
def test_the_key_opens(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/v1/model", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": f"Basic {KEY}"}, "missing API key"),
        ({"Authorization": "Bearer wrong"}, "invalid API key"),
        ({"X-API-Key": KEY[:-1]}, "invalid API key"),
        ({"X-API-Key": KEY + "x"}, "invalid API key"),
    ],
)
def test_a_missing_or_wrong_key_is_401(
    keyed: TestClient, headers: dict[str, str], message: str
) -> None:
    response = keyed.get("/v1/model", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith(message)
    assert KEY not in response.text


def test_refused_before_the_body_is_read(keyed: TestClient) -> None:
    # Over the body limit (413 if it were read): the 401 comes first, unread.
    oversized = b"x" * (keyed.app.state.settings.max_body_bytes + 1)  # type: ignore[attr-defined]
    response = keyed.post("/v1/predict", content=oversized)
    assert response.status_code == 401


def test_behind_a_proxy_prefix(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(api_key=KEY), root_path="/digits") as client:
        assert client.get("/digits/v1/model").status_code == 401
        assert client.get("/digits/v1/model", headers={"X-API-Key": KEY}).status_code == 200
        assert client.get("/digits/healthz").status_code == 200


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        ("/v1", True),
        ("/v1/predict", True),
        ("/v2", True),
        ("/v2/models/digits/infer", True),
        ("/v2/healthz", True),
        ("/v2/health/live", False),
        ("/v2/health", False),
        ("/v10/x", False),
        ("/healthz", False),
        ("/", False),
        ("/static/app.js", False),
    ],
)
def test_which_paths_are_protected(path: str, protected: bool) -> None:
    assert _rules("GET", path).needs_key is protected


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "is set but empty"),
        ("  ", "is set but empty"),
        (KEY + "\n", "whitespace"),  # a key file's last newline
        (" " + KEY, "whitespace"),
        (KEY[:4] + "\x00" + KEY[4:], "control characters"),
    ],
)
def test_a_key_that_cannot_work_is_refused(
    make_settings: Callable[..., Settings], key: str, reason: str
) -> None:
    """An empty key (an empty Kubernetes secret) used to turn auth off in silence."""
    with pytest.raises(ValidationError, match=reason):
        make_settings(api_key=key)


def test_the_server_refuses_to_start_with_an_empty_key() -> None:
    """Issue 13 item 12, against the real command: exit 1 with one line, before binding."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIGITS_")}
    env.update(DIGITS_API_KEY="", DIGITS_HOST="127.0.0.1", DIGITS_PORT=str(free_port()))
    command = [sys.executable, "-m", "service"]
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("digits: error: invalid setting DIGITS_API_KEY: ")
    assert "is set but empty" in lines[0]
