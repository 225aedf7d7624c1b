"""Worker heartbeats: a worker whose event loop stops turning is killed and replaced.

A worker can stop serving without dying: stopped (SIGSTOP), or stuck in C code that does
not return. Its socket still takes its share of new connections, which hang there, and a
supervisor that watches for deaths alone sees nothing (issue 24: with one of two workers
stopped, 3–11 of 20 new connections hung, and nothing was logged). As with gunicorn's
`--timeout`, each worker proves that it is alive: a task on its event loop writes the time,
every `interval`, to a slot of memory it shares with the supervisor, which kills (SIGKILL)
and replaces a worker whose slot is older than `timeout` (DIGITS_WORKER_HEARTBEAT_SECONDS).
The slot is 8 bytes of shared anonymous memory mapped before the fork (gunicorn changes a
temporary file's ctime: memory needs no file and no system call).

A worker's time starts at its fork: it has `timeout` seconds to start its event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import time

# The longest pause between two beats, and between two looks by the supervisor: a silent
# worker is killed at most this long after `timeout`.
MAX_INTERVAL_SECONDS = 1.0


class Heartbeat:
    """One worker's slot: written by the worker, read by the supervisor."""

    def __init__(self, timeout: float) -> None:
        self.interval = min(timeout / 4, MAX_INTERVAL_SECONDS)
        # Anonymous and MAP_SHARED (mmap's default): the forked worker writes the pages the
        # supervisor reads. A page-aligned double is written and read in one instruction,
        # so the supervisor never sees half of a time.
        self._memory = mmap.mmap(-1, ctypes.sizeof(ctypes.c_double))
        self._time = ctypes.c_double.from_buffer(self._memory)
        self.beat()

    def beat(self) -> None:
        # CLOCK_MONOTONIC: one clock for every process of the machine, never set back.
        self._time.value = time.monotonic()

    def silent_for(self) -> float:
        """Seconds since the worker's last beat (or its fork)."""
        return time.monotonic() - self._time.value

    async def keep_beating(self) -> None:
        """In the worker, on its event loop, until cancelled: the loop turns, so it beats."""
        while True:
            self.beat()
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        del self._time  # the view into the memory must go first, or it cannot be unmapped
        self._memory.close()


class Heartbeats:
    """The supervisor's side: the slots of the workers it watches, by process id."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # 0: no heartbeat
        self._slots: dict[int, Heartbeat] = {}

    def new(self) -> Heartbeat | None:
        """A slot for a worker about to be forked; None when the check is off."""
        return Heartbeat(self.timeout) if self.timeout > 0 else None

    def watch(self, pid: int, heartbeat: Heartbeat | None) -> None:
        if heartbeat is not None:
            self._slots[pid] = heartbeat

    def forget(self, pid: int) -> None:
        heartbeat = self._slots.pop(pid, None)
        if heartbeat is not None:
            heartbeat.close()

    def silent(self) -> list[int]:
        """The workers that have not beaten for longer than `timeout`."""
        return [pid for pid, slot in self._slots.items() if slot.silent_for() > self.timeout]

    def next_look(self) -> float | None:
        """Seconds until the supervisor should look again; None with nothing to watch."""
        return min(self.timeout / 4, MAX_INTERVAL_SECONDS) if self._slots else None
