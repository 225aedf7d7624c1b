"""Pre-fork worker processes: one verified model, N servers, each on its own socket.

Python runs one request's Python code at a time per process, so one process per core
is what turns 2 cores into ~2× the requests/s (measured in bench/). uvicorn's own
`workers=` spawns fresh interpreters that re-import everything and load the model
again (~1 s each before ready); forking *after* the model is loaded and verified
makes every worker ready at once, shares the imported code copy-on-write, and keeps
"a bad model never binds the port". Forking is safe here because nothing has started a
thread yet: the model is loaded on the main thread and the interpreters run with one
thread each (with `interpreter_threads` > 1 a child loads its own).

The parent supervises and does not serve (supervisor.py): it forks the workers, relays
signals to them, and replaces one that dies. Each worker listens on its own socket bound
with SO_REUSEPORT to the same port, and the kernel spreads new connections evenly across
them (one shared socket let whichever process woke first take them: 22:10 between two
workers, issue 13); a worker that drains or dies closes its socket, so new connections go to
the others. Each worker runs in its own session, so that signals sent to the server's
process group (Ctrl-C, `kill -- -PGID`) reach the supervisor alone, which sends each worker
one; a worker learns that the supervisor died from `PARENT_GONE_SIGNAL`, not from a second
SIGTERM that would cut its drain short.

Every process counts its own requests, so `/metrics` answered by one of them would see a
fraction of the traffic. prometheus_client's multiprocess mode has each process write its
metric values to files in one folder, and any process's scrape merges all the files: the
server makes that folder at start-up (`metrics_folder`) and tells prometheus_client
about a worker that died (`mark_dead`), whose counts stay but which is no longer live.
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
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Sent to a worker by the kernel when its supervisor dies (a worker left behind would hold
# the port for ever); distinct from SIGTERM so that it never counts as a second one.
PARENT_GONE_SIGNAL = signal.SIGUSR1
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


def claim_port(host: str, port: int) -> int:
    """Check that nothing listens on `host`:`port`, and return the port (the one the kernel
    chose if `port` is 0). SO_REUSEPORT would otherwise share the port, in silence, with
    another server of the same user that listens there already."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        chosen: int = probe.getsockname()[1]
        return chosen


def worker_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` with SO_REUSEPORT, for one worker. Not yet
    listening: uvicorn listens once the worker's app has started, so the kernel sends it
    no connection before."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def become_worker(parent: int) -> None:
    """In a freshly forked worker: its own session, and told when the supervisor dies."""
    os.setsid()
    _die_with_parent(parent)


def signal_quietly(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def mark_dead(pid: int) -> None:
    """Tell prometheus_client that worker `pid` has been reaped."""
    folder = os.environ.get(METRICS_FOLDER_VARIABLE)
    if folder:
        # Imported here: prometheus_client must not be imported before the folder is set.
        from prometheus_client import multiprocess

        # Its counters stay (they must never fall); its live gauges go.
        multiprocess.mark_process_dead(pid, folder)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, PARENT_GONE_SIGNAL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    # On a busy machine the parent can be killed before the child first runs: the signal
    # is then never sent (seen once, a worker serving on for minutes).
    if os.getppid() != parent:
        os.kill(os.getpid(), PARENT_GONE_SIGNAL)
