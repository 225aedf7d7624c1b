"""Admission control: how many images one worker process has taken on, and when to refuse more.

Every image a caller hands to the recognizer counts from the moment it is accepted (before
it is decoded) until its answer is ready or its caller gives up. Past `limit` images, a new
request is refused with `OverloadedError` (503 with `Retry-After` over HTTP) before any of its
images is decoded: a client told "busy, retry in a second" at once is better served than one
whose request queues behind minutes of work and then times out, and refusing costs nothing.

Images, not requests, because a request of 256 photos is 256 times the work of one: counting
requests would let a few batch clients queue up minutes of work. A request is always admitted
when nothing else is in flight, however large, so that `limit` below `max_images` never makes
a valid request impossible.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from service.errors import OverloadedError


class Admission:
    """Counts images in flight in one process and refuses those past `limit` (0: no limit)."""

    def __init__(self, limit: int, on_refused: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.on_refused = on_refused  # e.g. a counter of shed requests
        self._in_flight = 0
        # Callers are coroutines on one event loop, but tests share a recognizer across loops.
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Images accepted and not yet answered or abandoned."""
        return self._in_flight

    @property
    def saturated(self) -> bool:
        """Whether any new request would be refused now (the HTTP layer then refuses it
        before even reading its body)."""
        return self.limit > 0 and self._in_flight >= self.limit

    def refused(self) -> OverloadedError:
        """The error for a request shed now (counted as such)."""
        if self.on_refused is not None:
            self.on_refused()
        return OverloadedError(
            f"the server is busy ({self._in_flight} images in progress, at most {self.limit}); "
            "retry shortly"
        )

    def admit(self, count: int) -> Admitted:
        """`with admission.admit(count):` counts `count` images in flight for the duration of
        the block, or raises `OverloadedError` if that would pass the limit."""
        with self._lock:
            refused = self.limit > 0 and self._in_flight and self._in_flight + count > self.limit
            if not refused:
                self._in_flight += count
        if refused:
            raise self.refused()
        return Admitted(self, count)

    def _release(self, count: int) -> None:
        with self._lock:
            self._in_flight -= count


class Admitted:
    """Images counted in flight until the `with` block ends, however it ends. A class, not a
    generator-based context manager: every prediction request enters one."""

    __slots__ = ("_admission", "_count")

    def __init__(self, admission: Admission, count: int) -> None:
        self._admission = admission
        self._count = count

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._admission._release(self._count)
