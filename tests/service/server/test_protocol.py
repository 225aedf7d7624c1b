"""The HTTP protocol's bounds on a real server (issue 13, items 3, 4, 13 and 14): head size,
head time, connection cap, and how malformed HTTP is answered; pipelined requests, and
requests before malformed HTTP, answered in order (issue 24); all in raw sockets, since
an HTTP client library would not send what an attacker sends."""

from __future__ import annotations

import json
import re
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


def _responses(stream: bytes, methods: list[str]) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in `stream`, one per request method in turn (a HEAD's has no body), and
    nothing after them."""
    count = len(re.findall(rb"HTTP/1\.1 \d{3} ", stream))  # status lines
    assert count == len(methods), f"{count} responses to {methods}: {stream!r}"
    found: list[tuple[int, dict[str, str], bytes]] = []
    for method in methods:
        head, separator, stream = stream.partition(b"\r\n\r\n")
        assert separator and head.startswith(b"HTTP/1.1 "), f"{len(found)} responses, then {head!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = 0 if method == "HEAD" else int(headers["content-length"])
        found.append((int(status_line.split()[1]), headers, stream[:length]))
        stream = stream[length:]
    assert stream == b"", f"more than {len(methods)} responses: {stream!r}"
    return found


def _exchange(server: ServerProcess, data: bytes, methods: list[str]) -> list[tuple]:
    """Sends `data` in one write; the responses until the server closes the connection."""
    with _connect(server) as sock:
        sock.sendall(data)
        return _responses(_read_until_closed(sock), methods)


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


HEALTH_BODY = b'{"status":"ok"}'
GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
LAST_GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_pipelined_requests_are_each_answered_in_order_head_included(server: ServerProcess) -> None:
    # Before (issue 24, item 3): HEAD then GET in one write got one response, the GET's: the
    # HEAD's head, held to go out with body bytes it never has, was lost.
    responses = _exchange(server, HEAD + GET + HEAD + LAST_GET, ["HEAD", "GET", "HEAD", "GET"])
    assert [status for status, _, _ in responses] == [200] * 4
    assert [body for _, _, body in responses] == [b"", HEALTH_BODY] * 2
    assert responses[0][1]["content-length"] == str(len(HEALTH_BODY))  # the HEAD's own head


def test_requests_before_malformed_http_are_answered_then_a_json_400(
    server: ServerProcess,
) -> None:
    # Before (issue 24, item 8): the connection was closed at once, the good requests unanswered.
    for data, methods in [
        (GET + b"GARBAGE\r\n\r\n", ["GET", "GET"]),
        (HEAD + GET + b"\x01 not HTTP\r\n\r\n", ["HEAD", "GET", "GET"]),
    ]:
        *answered, (status, headers, body) = _exchange(server, data, methods)
        expected = [b"" if method == "HEAD" else HEALTH_BODY for method in methods[:-1]]
        assert [(200, b) for b in expected] == [(s, b) for s, _, b in answered]
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "invalid_http"


def test_a_transfer_encoding_other_than_chunked_is_a_json_400(server: ServerProcess) -> None:
    # Before (issue 24, item 8): the connection was closed with no answer at all. 400, not
    # nginx's 501: with chunked not the final coding the body's length is unknown, and RFC
    # 9112 section 6.3 says the server MUST answer 400 and close.
    post = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nTransfer-Encoding: xchunked\r\n\r\n{}"
    )
    log_before = len(server.output())
    for data, methods in [(post, ["POST"]), (GET + post, ["GET", "POST"])]:
        *answered, (status, headers, body) = _exchange(server, data, methods)
        assert [(s, b) for s, _, b in answered] == [(200, HEALTH_BODY)] * len(answered)
        assert status == 400 and headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == "invalid_http" and "xchunked" in error["message"], error
    # Its app, already scheduled, wrote nothing more (no `100 Continue` after the refusal).
    assert "Traceback" not in server.output()[log_before:], server.output()[log_before:]


def test_http_1_1_without_host_is_a_json_400(server: ServerProcess) -> None:
    # Before (issue 24, item 13): 200. RFC 9112 section 3.2: an HTTP/1.1 request without Host
    # MUST get 400.
    [(status, headers, body)] = _exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n", ["GET"])
    assert status == 400 and headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_http" and "Host" in error["message"], error
    # After a good request in the same write: that one answered first.
    [(first, _, _), (second, _, _)] = _exchange(
        server, GET + b"GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", ["GET", "GET"]
    )
    assert (first, second) == (200, 400)
    # HTTP/1.0 needs none; Host after other headers, in any case, counts.
    for request in [
        b"GET /healthz HTTP/1.0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nAccept: */*\r\nHOST: x\r\nConnection: close\r\n\r\n",
    ]:
        assert _exchange(server, request, ["GET"])[0][0] == 200
