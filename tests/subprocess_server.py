"""A real `python -m service` process on a loopback port, for tests that need the whole
server — uvicorn, signals, sockets, its memory — rather than the ASGI app in-process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:  # a tiny race with other processes is acceptable in tests
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def server_process(
    env: dict[str, str] | None = None,
    *,
    command: Sequence[str] = (sys.executable, "-m", "service"),
    cwd: Path = REPO_ROOT,
    ready_timeout: float = 90,
    host: str = "127.0.0.1",
    new_session: bool = False,
) -> Iterator[ServerProcess]:
    """Start the server on `host` (a loopback address), wait for `/readyz` 200, yield it;
    stop it (SIGTERM, then SIGKILL) if it is still running. With `new_session`, it leads
    a process group of its own, which a test may signal as a whole (`os.killpg`)."""
    port = free_port(host)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    # No drain by default: nothing routes traffic here, so stopping need not wait for it.
    full_env.update(DIGITS_ACCESS_LOG="false", DIGITS_LOG_LEVEL="info", DIGITS_DRAIN_SECONDS="0")
    full_env.update(env or {})
    full_env.update(DIGITS_HOST=host, DIGITS_PORT=str(port))  # always loopback
    with tempfile.TemporaryDirectory(prefix="digits-server-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                list(command),
                env=full_env,
                cwd=cwd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        server = ServerProcess(process, port, log, host)
        try:
            _wait_until_ready(server, ready_timeout, _workers(full_env))
            yield server
        finally:
            # SIGTERM, not SIGKILL: the parent then stops its forked workers too.
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _wait_until_ready(server: ServerProcess, timeout: float, workers: int) -> None:
    """Until `/readyz` answers 200 and, with several workers, every worker listens: each
    opens its own socket once its app has started, and a busy machine starts them apart."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{server.output()}")
        try:
            ready = httpx.get(server.url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            ready = False
        if ready and (workers <= 1 or _listening_sockets(server.port) >= workers):
            return
        time.sleep(0.05)
    raise AssertionError(f"the server was not ready within {timeout} s:\n{server.output()}")


def _workers(env: dict[str, str]) -> int:
    from service.server.workers import worker_count

    try:
        return worker_count(int(env.get("DIGITS_WORKERS", "0")))
    except ValueError:
        return 1  # not a number: the server refuses it and exits (seen as an early exit)


def _listening_sockets(port: int) -> int:
    """Sockets listening on `port` (IPv4, any local address)."""
    return len(server_sockets(port, LISTEN))


# --- what the live tests read of a server process, from /proc (proc(5)) ----------------

LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def server_sockets(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 sockets in `state` whose local port is `port` (the server's end)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children (its forked workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of `pid` in KiB: `VmRSS` now, or `VmHWM`, its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_memory(pid: int) -> None:
    """Sets `VmHWM` to the current `VmRSS`, so the next peak is this test's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass(frozen=True)
class Measured(Generic[T]):
    """What `measured_while` saw: the call's answer, the server's peak RSS growth in bytes,
    and the slowest `/healthz` meanwhile, in seconds."""

    answer: T
    peak_growth: int
    slowest_healthz: float


def measured_while(server: ServerProcess, call: Callable[[], T]) -> Measured[T]:
    """`call`, polling `/healthz` meanwhile: the serving process's peak RSS growth (VmHWM,
    reset first) and the slowest `/healthz` (a blocked event loop shows there)."""
    pid = server.process.pid
    reset_peak_memory(pid)
    baseline = memory_kib(pid, "VmHWM") * 1024
    slowest, done = [0.0], threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                slowest[0] = max(slowest[0], time.perf_counter() - started)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.05)
        answer = call()
    finally:
        done.set()
        poller.join()
    return Measured(answer, memory_kib(pid, "VmHWM") * 1024 - baseline, slowest[0])


def status_line(connection: socket.socket) -> str:
    """The first line of the answer read from a raw `connection`."""
    data = b""
    while b"\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()
