"""Start an HTTP server as a subprocess, time it to ready, read its memory, stop it.

Memory is read from /proc (Linux), summed over the process and its children, so a
multi-worker server (uvicorn workers, BentoML's processes) is counted whole.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its port, process, and how long it took to become ready."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    ready_seconds: float = float("nan")
    log_path: Path | None = None
    notes: dict[str, object] = field(default_factory=dict)

    def rss_mb(self) -> float:
        """Resident memory of the server and all its descendants, in MB."""
        return round(sum(_rss_kb(pid) for pid in _tree(self.process.pid)) / 1024, 1)

    def largest_process_mb(self) -> float:
        """Resident memory of the server's largest single process, in MB."""
        return round(max(_rss_kb(pid) for pid in _tree(self.process.pid)) / 1024, 1)

    def processes(self) -> int:
        return len(_tree(self.process.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the server's process tree."""
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(_cpu_ticks(pid) for pid in _tree(self.process.pid)) / ticks


@contextmanager
def running(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    ready_path: str = "/readyz",
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    log_dir: Path | None = None,
) -> Iterator[Server]:
    """Start `command`, wait until GET `ready_path` answers 200, yield, then stop it."""
    log_path = (log_dir or Path("/tmp")) / f"bench-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        began = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so the whole group (workers too) can be stopped
        )
        server = Server(name, port, process, log_path=log_path)
        try:
            server.ready_seconds = round(_wait_ready(server, ready_path, began, timeout), 3)
            yield server
        finally:
            _stop(process)


def _wait_ready(server: Server, path: str, began: float, timeout: float) -> float:
    url = f"http://{HOST}:{server.port}{path}"
    while time.perf_counter() - began < timeout:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:] if server.log_path else ""
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return time.perf_counter() - began
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s (log: {server.log_path})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            text = (task / "children").read_text()
            found.extend(int(child) for child in text.split())
        return found
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    pids = [pid]
    index = 0
    while index < len(pids):
        pids.extend(_children(pids[index]))
        index += 1
    return pids


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0
