"""A response's head and its first body bytes, written to the socket at once.

uvicorn writes a response's head as soon as the app starts the response, and each body
part as it comes: a small JSON answer goes out as two writes, so two system calls and two
TCP segments, each of which wakes the client too. Here the head is held until the first
body bytes and goes out with them, in one write.

uvicorn writes for every body message, if only b"" (or a chunked ending), except for a
response to HEAD, which has no body: so protocol.py does not wrap a HEAD's cycle, whose
head is its one write. (It did, and flushed what was held when a response completed, from
the protocol's current cycle: with requests pipelined, that was the next request's, and
the HEAD's head was never sent; issue 24.)

Only the head is held, never body bytes, so streaming is unchanged from the first chunk
on; and only once the response has started, so an interim `100 Continue` (which the client
waits for before sending its body) still goes out at once. What of uvicorn's cycle this
relies on is listed in uvicorn_internals.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.server.uvicorn_internals import RequestResponseCycle


class CoalescingTransport:
    """The connection's transport, as one request-response cycle writes to it."""

    __slots__ = ("_cycle", "_head_seen", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif not self._head_seen and self._cycle.response_started:
            self._head_seen = True
            self._held = data  # the head: it goes out with the first body bytes
            return
        if data:
            self._transport.write(data)

    def close(self) -> None:
        # uvicorn closes after a response (`Connection: close`), or after the app failed
        # once its response started: what is held goes first, as uvicorn would have sent it.
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)  # is_closing, get_extra_info, ...
