"""The parent of a multi-worker server: forks the workers, replaces the dead, relays signals.

It holds the verified model and forks every worker from it (workers.py), so a replacement
is ready as fast as the first ones were, and runs no server, no event loop and no thread of
its own: forking stays safe however long it runs. It waits for signals synchronously
(`sigwaitinfo`, with them blocked), so nothing it does runs inside a signal handler:

- a worker that dies (SIGCHLD) is reaped, logged, marked dead for the metrics, and replaced;
  more than `restart_limit` deaths within RESTART_WINDOW_SECONDS mean something is wrong
  that restarting workers will not fix: the others drain, and the server exits 1, so that
  the orchestrator restarts it (and counts a crash);
- a worker whose event loop has not beaten for `heartbeat_seconds` (heartbeat.py: stopped,
  or stuck in C code) is killed with SIGKILL and replaced at once, which counts as a death
  (the wait for signals times out at least once a second to look);
- SIGTERM and SIGINT are sent on to every worker, one for one (a second SIGTERM ends their
  drain early, as in a single process); the server exits 0 once they have all stopped, or
  kills those left after `stop_timeout`;
- SIGHUP is logged and ignored, as by a single-process server (shutdown.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable

from service.server import workers
from service.server.heartbeat import Heartbeat, Heartbeats

logger = logging.getLogger(__name__)

RESTART_WINDOW_SECONDS = 60.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}


class Supervisor:
    def __init__(
        self,
        count: int,
        bind: Callable[[], socket.socket],
        run_worker: Callable[[socket.socket, Heartbeat | None], int],
        *,
        restart_limit: int,
        stop_timeout: float,
        heartbeat_seconds: float = 0.0,
    ) -> None:
        self.count = count
        self.bind = bind  # a new worker's socket
        # Runs in the forked worker until it stops (its exit status); the worker's event loop
        # keeps writing the time to the heartbeat, if any.
        self.run_worker = run_worker
        self.restart_limit = restart_limit
        self.stop_timeout = stop_timeout
        self.heartbeats = Heartbeats(heartbeat_seconds)
        self.children: set[int] = set()
        self.silenced: set[int] = set()  # killed for want of a heartbeat, not yet reaped
        self.deaths: deque[float] = deque()
        self.stopping = False
        self.exit_status = 0
        self.deadline: float | None = None
        self._mask: set[int | signal.Signals] = set()

    def run(self) -> int:
        """Start the workers and supervise them until they have all stopped; the exit status."""
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for _ in range(self.count):
                self._start()
            while self.children:
                timeout = self._time_to_wake()
                if timeout is None:
                    info: signal.struct_siginfo | None = signal.sigwaitinfo(_SIGNALS)
                else:
                    info = signal.sigtimedwait(_SIGNALS, timeout)
                if info is not None:
                    self._on_signal(info.si_signo)
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    self._kill_the_rest()
                elif not self.stopping:  # stopping, the deadline above bounds every worker
                    self._kill_the_silent()
            return self.exit_status
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _time_to_wake(self) -> float | None:
        """Seconds until the stop deadline or the next look at the heartbeats, if any."""
        look = None if self.stopping else self.heartbeats.next_look()
        stop = None if self.deadline is None else self.deadline - time.monotonic()
        times = [wake for wake in (look, stop) if wake is not None]
        return max(0.0, min(times)) if times else None

    def _kill_the_silent(self) -> None:
        for pid in self.heartbeats.silent():
            self.heartbeats.forget(pid)
            self.silenced.add(pid)
            timeout = self.heartbeats.timeout
            logger.error("worker %d did not answer for %g s: killed and replaced", pid, timeout)
            # SIGKILL ends a stopped process too. The replacement starts now: one stuck in
            # the kernel may take a while to die, but its socket is no use meanwhile.
            workers.signal_quietly(pid, signal.SIGKILL)
            self._died()
            if self.stopping:  # that was one replacement too many: the server stops
                return

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self._reap()
        elif signum == signal.SIGHUP:
            logger.warning("SIGHUP ignored: settings and the model are read at start")
        else:
            name = signal.Signals(signum).name
            logger.info("%s: stopping %d worker(s)", name, len(self.children))
            self._stop(signum)

    def _start(self) -> None:
        try:
            sock = self.bind()
        except OSError as error:
            logger.error("cannot bind a socket for a new worker: %s", error)
            self._died()
            return
        parent = os.getpid()
        heartbeat = self.heartbeats.new()  # before the fork: the worker shares its memory
        sys.stdout.flush()  # or the worker would write the parent's buffered output again
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._be_the_worker(parent, sock, heartbeat)  # never returns
        sock.close()  # the worker's alone: it closes when the worker stops listening
        self.children.add(pid)
        self.heartbeats.watch(pid, heartbeat)
        logger.info("started worker process %d", pid)

    def _be_the_worker(self, parent: int, sock: socket.socket, heartbeat: Heartbeat | None) -> None:
        status = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            workers.become_worker(parent)
            status = self.run_worker(sock, heartbeat)
        except SystemExit as exit_:  # uvicorn exits 3 when the app fails to start
            status = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            logger.exception("worker process %d failed", os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            # Not the supervisor's clean-up (atexit, the metrics folder): only its own.
            os._exit(status)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            self.children.discard(pid)
            self.heartbeats.forget(pid)
            workers.mark_dead(pid)
            how = _describe(status)
            if pid in self.silenced:  # logged, counted and replaced when it was killed
                self.silenced.discard(pid)
                logger.info("worker process %d ended (%s)", pid, how)
                continue
            if self.stopping:
                logger.info("worker process %d stopped (%s)", pid, how)
                continue
            logger.error("worker process %d died (%s)", pid, how)
            self._died()

    def _died(self) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW_SECONDS:
            self.deaths.popleft()
        if len(self.deaths) > self.restart_limit:
            logger.error(
                "%d worker deaths within %g s (DIGITS_WORKER_RESTART_LIMIT=%d): stopping the "
                "server, exit status 1",
                len(self.deaths),
                RESTART_WINDOW_SECONDS,
                self.restart_limit,
            )
            self.exit_status = 1
            self._stop(signal.SIGTERM)
            return
        logger.warning("starting a replacement worker")
        self._start()

    def _stop(self, signum: int) -> None:
        if not self.stopping:
            self.stopping = True
            self.deadline = time.monotonic() + self.stop_timeout
        for pid in self.children:
            workers.signal_quietly(pid, signum)

    def _kill_the_rest(self) -> None:
        for pid in self.children:
            logger.warning("worker %d did not stop in %.0f s: killing it", pid, self.stop_timeout)
            workers.signal_quietly(pid, signal.SIGKILL)
        self.deadline = None  # their SIGCHLD ends the wait


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
