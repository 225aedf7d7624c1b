"""/docs: Swagger UI served from the package, so it works with no Internet (air-gapped
clusters), under the page's Content-Security-Policy (issue 13, item 14)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Route, expect

from service.api.routes import STATIC_DIR
from tests.conftest import REPO_ROOT
from tests.service.api.browser import chromium, running_service

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_docs_reference_only_files_this_server_serves(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = _assets(page.text)
    assert {a.rsplit(".", 1)[-1] for a in assets} == {"js", "css", "png"}
    for asset in assets:
        # Relative, so a proxy's path prefix is kept; no scheme, so no CDN.
        assert asset.startswith("static/") and ":" not in asset, asset
        response = client.get("/" + asset)
        assert response.status_code == 200, asset
        suffix = asset[asset.rfind(".") :]
        assert response.headers["content-type"].startswith(MEDIA_TYPES[suffix]), asset
    # Neither the init script nor the bundle is inline: the CSP allows none.
    assert "<script>" not in page.text and "<style" not in page.text
    init = client.get("/static/docs.js").text
    assert 'url: "openapi.json"' in init  # relative, like the assets
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_every_static_file_is_in_the_wheel() -> None:
    """The package data globs (setuptools expands them like glob) cover service/static."""
    # `service = [...]` under [tool.setuptools.package-data]; a TOML array of plain strings
    # is JSON (no tomllib on Python 3.10).
    found = re.search(r"^service = (\[.*\])$", (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    patterns = json.loads(found.group(1))
    packaged = {str(path) for pattern in patterns for path in (REPO_ROOT / "service").glob(pattern)}
    static = {str(path) for path in STATIC_DIR.rglob("*") if path.is_file()}
    assert static - packaged == set()
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} <= {
        path.rsplit("/", 1)[-1] for path in packaged
    }


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    with running_service() as url:
        yield url


def test_docs_render_offline_in_a_browser(service_url: str) -> None:
    """Chromium with every request off this server refused: Swagger UI renders every
    operation, runs one, and the browser reports no error (a CSP violation would be one)."""
    outside: list[str] = []
    problems: list[str] = []

    def local_only(route: Route) -> None:
        if route.request.url.startswith(service_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with chromium() as context:
        context.route("**/*", local_only)
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(service_url + "docs")
        expect(page.locator(".info .title")).to_contain_text("digits", timeout=30_000)
        expect(page.locator(".opblock")).to_have_count(_operation_count(service_url))

        healthz = page.locator(".opblock", has_text="/healthz")
        healthz.locator(".opblock-summary").click()
        healthz.get_by_role("button", name="Try it out").click()
        healthz.get_by_role("button", name="Execute").click()
        answer = healthz.locator(".live-responses-table td.response-col_status:not(.col_header)")
        expect(answer).to_have_text("200", timeout=30_000)
    assert outside == []
    assert problems == []


def _operation_count(service_url: str) -> int:
    paths = httpx.get(service_url + "openapi.json").json()["paths"]
    return sum(len(operations) for operations in paths.values())
