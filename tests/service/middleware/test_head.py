"""HEAD answers wherever GET does: GET's status and headers, no body (issue 13, item 13)."""

from __future__ import annotations

import http.client

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.subprocess_server import server_process

GET_PATHS = (
    "/healthz",
    "/readyz",
    "/",
    "/docs",
    "/openapi.json",
    "/metrics",
    "/v1/model",
    "/v2/health/live",
    "/static/app.js",
)


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_is_get_without_the_body(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200, path
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # its body counts the requests, this one included
        length = str(len(get.content))
        assert head.headers["content-length"] == get.headers["content-length"] == length


def test_head_where_get_is_not_allowed_or_nothing_is_found(client: TestClient) -> None:
    not_allowed = client.head("/v1/predict")
    assert not_allowed.status_code == 405 and not_allowed.content == b""
    assert not_allowed.headers["allow"] == "POST"
    missing = client.head("/nothing-here")
    assert missing.status_code == 404 and missing.content == b""


def test_head_requests_are_counted_as_head_by_route(client: TestClient) -> None:
    for _ in range(2):
        client.head("/healthz")
    families = text_string_to_metric_families(client.get("/metrics").text)
    samples = next(f.samples for f in families if f.name == "digits_http_requests")
    counted = [
        s.value
        for s in samples
        if s.name == "digits_http_requests_total"
        and s.labels == {"method": "HEAD", "route": "/healthz", "status": "200"}
    ]
    assert counted == [2.0]


def test_head_on_a_real_server() -> None:
    """Probes and load balancers that ask with HEAD: /healthz and / got 405 before."""
    with server_process() as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for path in ("/healthz", "/readyz", "/", "/docs"):
                connection.request("GET", path)
                get = connection.getresponse()
                body = get.read()
                # The same keep-alive connection: a stray body would corrupt the next answer.
                connection.request("HEAD", path)
                head = connection.getresponse()
                assert head.status == 200, path
                assert head.read() == b""
                assert head.getheader("content-length") == str(len(body))
                assert head.getheader("x-content-type-options") == "nosniff"
        finally:
            connection.close()
