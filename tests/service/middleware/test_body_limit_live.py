"""The body limit on a real server: a huge declared Content-Length and an endless chunked
upload both get 413 long before the body could have been buffered, and clients that send
the whole body before reading (urllib, curl, httpx) read that 413 rather than a reset."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.subprocess_server import ServerProcess, memory_kib, server_process, status_line

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with server_process({"DIGITS_MAX_BODY_BYTES": str(LIMIT), "DIGITS_WORKERS": "1"}) as running:
        yield running


def _headers(port: int, *extra: str) -> bytes:
    lines = ["POST /v1/predict HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += ["Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_huge_content_length_is_refused_without_reading(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        # Declares 100 GB and sends none of it: the answer cannot wait for the body.
        connection.sendall(_headers(server.port, "Content-Length: 100000000000"))
        started = time.monotonic()
        assert status_line(connection) == "HTTP/1.1 413 Request Entity Too Large"
        assert time.monotonic() - started < 5


def test_endless_chunked_upload_is_cut_off_at_the_limit(server: ServerProcess) -> None:
    rss_before = memory_kib(server.process.pid)
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
        assert status_line(connection) == "HTTP/1.1 413 Request Entity Too Large"
        assert _closed(connection)
    # Buffering the upload would show as tens of MiB; the limit allows 1 MiB.
    assert memory_kib(server.process.pid) - rss_before < 16 * 1024


def test_a_small_content_length_cannot_smuggle_a_chunked_body_past_the_limit(
    server: ServerProcess,
) -> None:
    # A body within its declared length is not counted (service/middleware/body_limit.py):
    # that holds only if a request cannot declare a small length and then send a chunked
    # body of any size. The HTTP parser refuses the pair before any of the body is taken.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        head = _headers(server.port, "Content-Length: 10", "Transfer-Encoding: chunked")
        connection.sendall(head + b"400\r\n" + b"x" * 1024 + b"\r\n")
        assert status_line(connection) == "HTTP/1.1 400 Bad Request"
        assert _closed(connection)


def _closed(connection: socket.socket) -> bool:
    try:
        while connection.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


# Lingering close: a body over the limit is answered with the whole 413 first, then
# drained (up to twice the limit) so that clients still sending can read the answer.
BIG_LIMIT = 16 * 1024 * 1024
OVERSIZED = b"x" * (BIG_LIMIT * 3 // 2)  # 24 MiB: over the limit, within the drain bound


@pytest.fixture(scope="module")
def roomy_server() -> Iterator[ServerProcess]:
    env = {"DIGITS_MAX_BODY_BYTES": str(BIG_LIMIT), "DIGITS_WORKERS": "1"}
    with server_process(env) as running:
        yield running


def _assert_413_json(status: int, body: bytes) -> None:
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_urllib_reads_the_413_instead_of_a_reset(roomy_server: ServerProcess) -> None:
    """http.client writes the whole body before reading: the server must not hang up first."""
    rss_before = memory_kib(roomy_server.process.pid)
    for _ in range(3):
        request = urllib.request.Request(
            roomy_server.url + "/v1/predict",
            data=OVERSIZED,
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        _assert_413_json(refused.value.code, refused.value.read())
    # 72 MiB discarded in all; none of it may stay in (or pass through) the server's memory.
    assert memory_kib(roomy_server.process.pid) - rss_before < 8 * 1024


def test_httpx_reads_the_413(roomy_server: ServerProcess) -> None:
    for content in (OVERSIZED, iter([OVERSIZED[: BIG_LIMIT // 2]] * 3)):  # sized, then chunked
        response = httpx.post(
            roomy_server.url + "/v1/predict",
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        _assert_413_json(response.status_code, response.content)


@pytest.mark.parametrize("expect", ["100-continue", ""], ids=["expect-continue", "no-expect"])
def test_curl_reads_the_413(roomy_server: ServerProcess, tmp_path: Path, expect: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(OVERSIZED)
    result = subprocess.run(
        ["curl", "-sS", "-H", "Content-Type: application/json", "-H", f"Expect: {expect}",
         "--data-binary", f"@{body}", "-w", "\n%{http_code}", roomy_server.url + "/v1/predict"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    payload, _, status = result.stdout.rpartition(b"\n")
    _assert_413_json(int(status), payload)
