"""Abandoned requests stop costing CPU, on a real server (issue 13, item 5).

A request of many expensive images is given up on twice over: by the deadline (504) and by a
client that hangs up. Either way the worker's CPU time (utime + stime from /proc) must stop
growing within about one image's decode; before, the worker threads decoded every remaining
image of the request (22.6 CPU-s for one 4 MB request, 9 s after its 504).
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.subprocess_server import ServerProcess, server_process

DEADLINE = 4.0
# ~52 KB as PNG; 92 ms of CPU to decode and preprocess on an Intel Xeon (AVX-512), more on
# slower machines. At 1500 px (25 ms there) all 250 images were done inside the deadline on
# that Xeon (a batch was then split over two threads), and the request got its 200 instead
# of the 504 it is about; in one thread they would still take only ~1.5× the deadline.
SIDE = 3000
IMAGES = 250  # ~23 CPU-s of work (Xeon) in a 17 MB body: far more than the deadline allows
# After the request is given up on, the worker may finish the images it is decoding at that
# moment (~0.15 CPU-s), then must idle. Measured in a window after that, as a share of the CPU
# it used per second while working: the cores are shared (other tests, the machine's other
# jobs), so absolute CPU-seconds would vary with the load. Old code: a share of ~1.
SETTLE = 1.0
WINDOW = 1.5
MAX_SHARE_AFTER = 0.25


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        "DIGITS_WORKERS": "1",
        "DIGITS_REQUEST_TIMEOUT_SECONDS": str(DEADLINE),
        "DIGITS_MAX_PIXELS": str(SIDE * SIDE),
        # Admission control must not refuse the request this test is about.
        "DIGITS_MAX_QUEUED_IMAGES": str(IMAGES),
    }
    with server_process(env) as running:
        yield running


@pytest.fixture(scope="module")
def body() -> bytes:
    image = Image.new("RGBA", (SIDE, SIDE), (255, 255, 255, 255))
    stroke = (SIDE * 4 // 15, SIDE // 5, SIDE * 11 // 15, SIDE * 4 // 5)  # a "1", corner to corner
    ImageDraw.Draw(image).line(stroke, fill=(0, 0, 0, 255), width=SIDE * 3 // 50)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"images": [{"data": data}] * IMAGES}).encode()


def _cpu_seconds(pid: int) -> float:
    # Fields after the command name; utime and stime are fields 14 and 15 of proc(5).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_rate(pid: int, seconds: float) -> float:
    """CPU-seconds per second the process uses over the next `seconds`."""
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds


def _assert_stopped(pid: int, working: float, what: str) -> None:
    time.sleep(SETTLE)  # the images being decoded when the request was dropped may finish
    after = _cpu_rate(pid, WINDOW)
    assert working > 0.05, f"the work had not really started ({working:.2f} CPU-s/s)"
    assert after < MAX_SHARE_AFTER * working, (
        f"{after:.2f} CPU-s/s after {what}, {working:.2f} CPU-s/s while working"
    )


def test_a_timed_out_request_stops_between_images(server: ServerProcess, body: bytes) -> None:
    pid = server.process.pid
    cpu, clock = _cpu_seconds(pid), time.monotonic()
    headers = {"Content-Type": "application/json"}
    response = httpx.post(server.url + "/v1/predict", content=body, headers=headers, timeout=60)
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "request_timeout"
    working = (_cpu_seconds(pid) - cpu) / (time.monotonic() - clock)
    _assert_stopped(pid, working, "the 504")
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_a_request_whose_client_hangs_up_stops_between_images(
    server: ServerProcess, body: bytes
) -> None:
    pid = server.process.pid
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + body)
        time.sleep(0.3)  # the body is read and decoding has begun
        working = _cpu_rate(pid, 0.5)
    # Measured before the deadline (at 4 s) would have stopped the work anyway.
    _assert_stopped(pid, working, "the client left")
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
