"""The body limit on a real server, over raw sockets: a huge declared Content-Length and
an endless chunked upload both get 413 long before the body could have been buffered."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.subprocess_server import ServerProcess, server_process

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with server_process({"DIGITS_MAX_BODY_BYTES": str(LIMIT), "DIGITS_WORKERS": "1"}) as running:
        yield running


def _status_line(connection: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: PTH123, SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _headers(port: int, *extra: str) -> bytes:
    lines = ["POST /v1/predict HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += ["Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_huge_content_length_is_refused_without_reading(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        # Declares 100 GB and sends none of it: the answer cannot wait for the body.
        connection.sendall(_headers(server.port, "Content-Length: 100000000000"))
        started = time.monotonic()
        assert _status_line(connection) == "HTTP/1.1 413 Request Entity Too Large"
        assert time.monotonic() - started < 5


def test_endless_chunked_upload_is_cut_off_at_the_limit(server: ServerProcess) -> None:
    rss_before = _rss_kib(server.process.pid)
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(_headers(server.port, "Transfer-Encoding: chunked"))
        try:
            # Up to 32× the limit, never the terminating chunk: the server must answer
            # and hang up, not read on (or wait) for an end that never comes.
            while sent < 32 * LIMIT:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 32 * LIMIT, "the server read on past its limit"
        assert _status_line(connection) == "HTTP/1.1 413 Request Entity Too Large"
        assert _closed(connection)
    # Buffering the upload would show as tens of MiB; the limit allows 1 MiB.
    assert _rss_kib(server.process.pid) - rss_before < 16 * 1024


def _closed(connection: socket.socket) -> bool:
    try:
        while connection.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True
