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
(as they die, and when its own server has stopped); children die with the parent
(PR_SET_PDEATHSIG).

Every process counts its own requests, so `/metrics` answered by one of them would see a
fraction of the traffic. prometheus_client's multiprocess mode has each process write its
metric values to files in one folder, and any process's scrape merges all the files: the
server makes that folder at start-up (`metrics_folder`) and tells prometheus_client
about a worker that died (`_reaped`), whose counts stay but which is no longer live.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# prometheus_client reads it when imported, to choose where metric values live.
METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PRIVATE_PREFIX = "digits-metrics-"
_OWNER_LOCK = "owner.lock"


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """The folder for this server's metric values, set in `PROMETHEUS_MULTIPROC_DIR`; call it
    before anything imports prometheus_client, fork inside it.

    A folder the user set is emptied (values of an earlier server are not this one's) and
    kept. Otherwise a private one is made in the temp dir (the only writable place in the
    Kubernetes pod) and removed on exit; one abandoned by a server that was killed is
    removed by the next server to start, once no process holds its lock.
    """
    configured = os.environ.get(METRICS_FOLDER_VARIABLE)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield folder
        return
    _remove_abandoned_folders()
    folder = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
    # Locked before it gets the name other servers look for: never seen unlocked. Forked
    # workers share the lock, so it is held until the last process of this server exits.
    lock = os.open(folder / f"{_OWNER_LOCK}.new", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    (folder / f"{_OWNER_LOCK}.new").rename(folder / _OWNER_LOCK)
    os.environ[METRICS_FOLDER_VARIABLE] = str(folder)
    owner = os.getpid()
    try:
        yield folder
    finally:
        if os.getpid() == owner:  # a forked worker leaving main() must not remove it
            shutil.rmtree(folder, ignore_errors=True)
            del os.environ[METRICS_FOLDER_VARIABLE]
        os.close(lock)


def _remove_abandoned_folders() -> None:
    for lock_path in Path(tempfile.gettempdir()).glob(f"{_PRIVATE_PREFIX}*/{_OWNER_LOCK}"):
        try:
            lock = os.open(lock_path, os.O_RDWR)
        except OSError:
            continue  # removed meanwhile, or another user's
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running server's
        finally:
            os.close(lock)
        logger.info("removing %s, left by a server that did not exit", lock_path.parent)
        shutil.rmtree(lock_path.parent, ignore_errors=True)


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
    parent = os.getpid()
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            _die_with_parent(parent)
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


def reap_children_as_they_die(children: list[int]) -> None:
    """In the parent: reap a child as soon as it dies, so that it stops being counted live.

    Workers are not replaced: the others take its share of the traffic.
    """

    def on_child_exit(signum: int, frame: object) -> None:
        for pid in children:
            _reaped(pid)

    signal.signal(signal.SIGCHLD, on_child_exit)
    on_child_exit(signal.SIGCHLD, None)  # one that died before the handler was set


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
        return True  # reaped already
    if done != pid:
        return False
    folder = os.environ.get(METRICS_FOLDER_VARIABLE)
    if folder:
        # Imported here: prometheus_client must not be imported before the folder is set.
        from prometheus_client import multiprocess

        # Its counters stay (they must never fall); its live gauges go.
        multiprocess.mark_process_dead(pid, folder)
    return True


def _die_with_parent(parent: int) -> None:
    # A worker left behind by a parent killed with SIGKILL would hold the port forever.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    # On a busy machine the parent can be killed before the child first runs: the signal
    # is then never sent (seen once, a worker serving on for minutes).
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
