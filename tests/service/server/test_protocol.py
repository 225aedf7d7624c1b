"""The HTTP protocol's bounds on a real server (issue 13, items 3, 4, 13 and 14): head size,
head time, connection cap, and how malformed HTTP is answered; all in raw sockets, since
an HTTP client library would not send what an attacker sends."""

from __future__ import annotations

import json
import select
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.subprocess_server import ServerProcess, memory_kib, server_process

MAX_HEADER_BYTES = 8192  # the default is 16384
HEADER_TIMEOUT = 2.0  # the default is 5
MAX_CONNECTIONS = 20  # the default is 1000
KEEP_ALIVE = 3.0  # the default is 75


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "DIGITS_WORKERS": "1",
        "DIGITS_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "DIGITS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "DIGITS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "DIGITS_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
    }
    with server_process(env) as process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def _read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not)."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _read_health(sock: socket.socket) -> bytes:
    """One whole `/healthz` answer, leaving the connection open."""
    received = b""
    while not received.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


def _parse(response: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def _request_with_header(path: str, size: int) -> bytes:
    """A GET whose head (request line and headers) is exactly `size` bytes long."""
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: ".encode()
    return head + b"a" * (size - len(head) - 4) + b"\r\n\r\n"


def test_a_head_over_max_header_bytes_is_431_and_the_connection_closes(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(_request_with_header("/healthz", MAX_HEADER_BYTES))
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # exactly the limit: served
    with _connect(server) as sock:
        sock.sendall(_request_with_header("/healthz", MAX_HEADER_BYTES + 1))
        status, headers, body = _parse(_read_until_closed(sock))
    assert status == 431 and headers["connection"] == "close"
    assert body["error"]["code"] == "headers_too_large"
    # Under /v2, in the Open Inference Protocol's shape.
    with _connect(server) as sock:
        sock.sendall(_request_with_header("/v2/health/ready", MAX_HEADER_BYTES * 4))
        status, _, body = _parse(_read_until_closed(sock))
    assert status == 431 and isinstance(body["error"], str)


def test_an_endless_header_line_is_cut_off_at_the_limit(server: ServerProcess) -> None:
    # Before the bound: 6 connections sending an unfinished 100 MB header line held 630 MiB.
    before = memory_kib(server.process.pid) / 1024
    sockets = [_connect(server) for _ in range(6)]
    chunk = b"a" * (1 << 20)
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            for _ in range(16):  # 16 MiB each, while the server reads and discards
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server has closed it already: fine too
    growth = memory_kib(server.process.pid) / 1024 - before
    for sock in sockets:
        response = _read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 431 "), response[:100]
        sock.close()
    assert growth < 20, f"RSS grew {growth:.0f} MiB"


def test_a_head_must_arrive_within_header_timeout_seconds(server: ServerProcess) -> None:
    with _connect(server) as silent:  # connects and sends nothing
        start = time.monotonic()
        assert _read_until_closed(silent) == b""  # closed, with nothing to answer
        assert HEADER_TIMEOUT * 0.75 < time.monotonic() - start < HEADER_TIMEOUT + 2
    with _connect(server) as slow:  # one byte every 0.3 s
        start = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
            readable, _, _ = select.select([slow], [], [], 0.3)
            if readable:
                break
            slow.sendall(bytes([byte]))
        status, headers, body = _parse(_read_until_closed(slow))
        assert time.monotonic() - start < HEADER_TIMEOUT + 2
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "header_timeout"


def test_an_idle_connection_is_closed_after_keep_alive_seconds(server: ServerProcess) -> None:
    with _connect(server) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_health(idle).startswith(b"HTTP/1.1 200")
        # Longer than the head timeout: between requests, the keep-alive timeout decides.
        time.sleep(HEADER_TIMEOUT + 0.5)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_health(idle).startswith(b"HTTP/1.1 200")  # still open, and reusable
        start = time.monotonic()
        assert _read_until_closed(idle) == b""
        assert KEEP_ALIVE * 0.75 < time.monotonic() - start < KEEP_ALIVE + 1


def test_connections_over_max_connections_get_503_at_once(server: ServerProcess) -> None:
    sockets = [_connect(server) for _ in range(MAX_CONNECTIONS * 2)]
    try:
        time.sleep(0.5)  # all accepted by now (well within the head timeout)
        readable, _, _ = select.select(sockets, [], [], 0)
        refused = [_read_until_closed(sock) for sock in readable]
        # Each refused at once; the others (MAX_CONNECTIONS at most) are open and silent.
        assert len(refused) >= MAX_CONNECTIONS, f"{len(refused)} refused"
        for response in refused:
            status, headers, body = _parse(response)
            assert status == 503 and headers["retry-after"] == "1"
            assert body["error"]["code"] == "too_many_connections"
    finally:
        for sock in sockets:
            sock.close()
    deadline = time.monotonic() + 10
    while httpx.get(server.url + "/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "connections were not accepted again"
        time.sleep(0.1)


def test_malformed_http_gets_a_json_400(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = _parse(_read_until_closed(sock))
    assert status == 400 and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "invalid_http"


def test_sighup_is_logged_and_ignored(server: ServerProcess) -> None:
    # Before: SIGHUP killed the server at once (exit 129), in-flight requests cut.
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP ignored" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_no_server_header(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/healthz")
    assert response.status_code == 200 and "server" not in response.headers
