"""Pre-fork worker processes: one verified model, one listening socket, N servers.

Python runs one request's Python code at a time per process, so one process per core
is what turns 2 cores into ~2× the requests/s (measured in bench/). uvicorn's own
`workers=` spawns fresh interpreters that re-import everything and load the model
again (~1 s each before ready); forking *after* the model is loaded and verified
makes every worker ready at once, shares the imported code copy-on-write, and keeps
"a bad model never binds the port". Forking is safe here because nothing has started a
thread yet: the model is loaded on the main thread and the interpreters run with one
thread each (with `interpreter_threads` > 1 a child loads its own).

The parent is a worker too. It forwards SIGTERM/SIGINT to the children and reaps them
when its own server has stopped; children die with the parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import time

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def worker_count(setting: int) -> int:
    """`setting`, or with 0 the number of CPU cores this process may run on."""
    if setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket, inheritable by forked workers (uvicorn takes it by `fd`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn reopens an `fd` as a Unix socket, so the event loop does not set
    # TCP_NODELAY on accepted connections as it does for TCP; Linux copies it from the
    # listener instead. Without it, Nagle + delayed ACKs add ~40 ms to every response.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def fork_workers(count: int) -> list[int]:
    """Fork `count` - 1 children. Returns their pids in the parent, [] in a child."""
    children: list[int] = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            return []
        children.append(pid)
    return children


def stop_children(children: list[int], timeout: float) -> None:
    """SIGTERM the children (if still running) and wait up to `timeout` s, then SIGKILL."""
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    remaining = list(children)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if not _reaped(pid)]
        if remaining:
            time.sleep(0.05)
    for pid in remaining:
        logger.warning("worker %d did not stop in %.0f s: killing it", pid, timeout)
        _signal(pid, signal.SIGKILL)
        _reaped(pid, block=True)


def forward_signal(children: list[int], sig: int) -> None:
    for pid in children:
        _signal(pid, sig)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reaped(pid: int, *, block: bool = False) -> bool:
    try:
        done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _die_with_parent() -> None:
    # A worker left behind by a parent killed with SIGKILL would hold the port forever.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
