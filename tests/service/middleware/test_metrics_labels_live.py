"""The labels of `/metrics` on a real server (issue 24, item 10): whatever methods and paths
clients send, the request series stay few. The HTTP parser takes 34 methods; each used to
become a `method` label value of its own (1,610 junk requests made 805 series, 1.58 MB, a
0.25 s scrape on the event loop). Routes are labelled by their operation's template, the
docs and static files included; unknown paths share `unmatched`."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.subprocess_server import ServerProcess, server_process, status_line

# Every method llhttp (httptools) parses in HTTP mode but GET, HEAD, POST, OPTIONS and
# CONNECT (whose target is an authority, not a path).
JUNK_METHODS = (
    "DELETE",
    "PUT",
    "TRACE",
    "COPY",
    "LOCK",
    "MKCOL",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
    "SEARCH",
    "UNLOCK",
    "BIND",
    "REBIND",
    "UNBIND",
    "ACL",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PATCH",
    "PURGE",
    "MKCALENDAR",
    "LINK",
    "UNLINK",
    "SOURCE",
    "QUERY",
)
LABELLED = {"GET", "HEAD", "POST", "OPTIONS", "other"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with server_process({"DIGITS_WORKERS": "1"}) as running:
        yield running


def _status(port: int, method: str, path: str) -> int:
    request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        return int(status_line(connection).split(" ", 2)[1])


def _requests_series(server: ServerProcess) -> list[dict[str, str]]:
    text = httpx.get(server.url + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "digits_http_requests":
            return [s.labels for s in family.samples if s.name == "digits_http_requests_total"]
    raise AssertionError("no digits_http_requests_total in /metrics")


def test_junk_methods_share_one_label(server: ServerProcess) -> None:
    paths = ("/healthz", "/v1/predict", "/no/such/path")
    answered = [_status(server.port, m, p) for m in JUNK_METHODS for p in paths]
    assert all(status < 500 for status in answered), answered  # parsed and refused
    series = _requests_series(server)
    methods = {labels["method"] for labels in series}
    assert methods <= LABELLED, f"unexpected method labels: {sorted(methods - LABELLED)}"
    # One series per route and status for all of them, not one per method.
    junk = [labels for labels in series if labels["method"] == "other"]
    assert len(junk) <= 3 * len(paths), junk


def test_docs_and_static_files_are_labelled_by_their_route(server: ServerProcess) -> None:
    for path in ("/openapi.json", "/static/app.js", "/static/style.css", "/docs"):
        assert httpx.get(server.url + path, timeout=30).status_code == 200
    assert httpx.head(server.url + "/openapi.json", timeout=30).status_code == 200
    labelled = {(s["method"], s["route"]) for s in _requests_series(server) if s["status"] == "200"}
    assert ("GET", "/openapi.json") in labelled
    assert ("HEAD", "/openapi.json") in labelled
    assert ("GET", "/static/{path:path}") in labelled  # one series for every file
    assert ("GET", "/docs") in labelled
