"""Security headers on every response, the refusals of the middlewares included (issue 13,
item 14): nosniff, a Content-Security-Policy that forbids framing, a Referrer-Policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.middleware.security_headers import CONTENT_SECURITY_POLICY, SecurityHeaders
from tests.subprocess_server import server_process

EXPECTED = {
    "x-content-type-options": "nosniff",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
}


def _assert_secured(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (response.url, name)


def test_the_policy_forbids_framing_and_anything_not_from_this_server() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


def test_every_kind_of_response_carries_the_headers(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(api_key="k" * 16, max_body_bytes=4096)) as client:
        responses = [
            client.get("/"),  # the page
            client.get("/docs"),
            client.get("/static/app.js"),
            client.get("/healthz"),
            client.get("/metrics"),
            client.get("/nothing-here"),  # 404
            client.put("/healthz"),  # 405
            client.get("/v1/model"),  # 401, from the API key middleware
            client.post("/v1/predict", content=b"x" * 5000, headers={"x-api-key": "k" * 16}),
            client.post("/v1/predict", json={"images": []}, headers={"x-api-key": "k" * 16}),
        ]
    assert [r.status_code for r in responses] == [200] * 5 + [404, 405, 401, 413, 422]
    for response in responses:
        _assert_secured(response)


def test_a_header_the_route_set_is_kept() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-security-policy", b"sandbox"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    response = TestClient(SecurityHeaders(app)).get("/")
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/docs", "/healthz", "/nothing-here"])
def test_headers_on_a_real_server(live_url: str, path: str) -> None:
    _assert_secured(httpx.get(live_url + path))


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    with server_process() as server:
        yield server.url
