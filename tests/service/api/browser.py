"""A real service and a real browser for the web page's tests.

The service runs as users run it (`python -m service`, uvicorn, a loopback port); the
browser is Debian's Chromium driven by Playwright. Playwright's own browser download
cannot work offline, so the system Chromium is required: CI installs it with apt-get.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Root in a container: no sandbox, no GPU, and no call home of any kind.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
START_TIMEOUT = 60.0


@contextmanager
def running_service() -> Iterator[str]:
    """`python -m service` on a free loopback port; yields its base URL once ready."""
    with socket.socket() as probe:  # a free port; a tiny race is acceptable in a test
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIGITS_")}
    env.update(DIGITS_HOST="127.0.0.1", DIGITS_PORT=str(port), DIGITS_LOG_LEVEL="warning")
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "service"], env=env, cwd=REPO_ROOT, stderr=log, text=True
        )
        try:
            base_url = f"http://127.0.0.1:{port}/"
            _wait_until_ready(base_url, server, log)
            yield base_url
        finally:
            # SIGINT, not SIGTERM: SIGTERM drains first (seconds of not-ready, for a
            # load balancer to notice), which a test has no use for.
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_ready(base_url: str, server: subprocess.Popen[str], log: IO[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            pytest.fail(f"the service exited with status {server.returncode}:\n{log.read()}")
        try:
            if httpx.get(base_url + "readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the service was not ready within {START_TIMEOUT:.0f} s")


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile; fails (never skips) when it is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the web page is tested in a real browser. "
            "Install it with `apt-get install -y chromium` (CI's .ci/run does this)."
        )
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 820},
            reduced_motion="reduce",  # bars jump to their value: screenshots are final
        )
        try:
            yield context
        finally:
            context.close()
