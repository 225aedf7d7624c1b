"""Stopping work whose caller gave up: threads cannot be interrupted, so they are told.

A request that passes its deadline, or whose client hangs up, has its coroutine cancelled;
the worker threads doing its decoding and inference would otherwise go on to the last image
(a 504 used to burn 9 more CPU-seconds). Instead each call gets an `abandoned` event, set
when its coroutine is cancelled, and the threads check it between units of work (each image,
each interpreter chunk): abandoned work stops within one image.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio.to_thread

R = TypeVar("R")


class Abandoned(Exception):  # noqa: N818 - a signal, not a failure
    """The caller stopped waiting; raised in the worker thread, where nobody reads it."""


def stop_if(abandoned: threading.Event | None) -> None:
    """Raise `Abandoned` once `abandoned` is set: the check between two units of work."""
    if abandoned is not None and abandoned.is_set():
        raise Abandoned


@contextlib.contextmanager
def abandon_on_exit(abandoned: threading.Event) -> Iterator[None]:
    """Sets `abandoned` when the block is left by an exception, above all by cancellation."""
    try:
        yield
    except BaseException:
        abandoned.set()
        raise


async def in_thread(function: Callable[..., R], *args: Any) -> R:
    """`function(*args)` in a worker thread. On cancellation the awaiting task moves on at
    once (anyio's default would wait for the thread); the thread, told through the
    `abandoned` event among `args`, stops at its next check."""
    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)
