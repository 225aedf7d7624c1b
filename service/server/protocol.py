"""uvicorn's httptools protocol with the bounds it lacks: head size, head time, connections.

Before any route, middleware or API key check runs, uvicorn's HTTP protocol reads the
request head (request line and headers) with no limit on its size or on the time it takes
(issue 13: an unfinished 100 MB header line held 630 MiB; a connection sending a byte
every 3 s stayed open for ever), and accepts every connection. Here, per worker process:

- a head over `max_header_bytes` gets 431 and the connection closes;
- a connection must send a complete head within `header_timeout_seconds` of connecting, and
  of the first byte of each later request: 408 if it had started one, else just closed
  (the keep-alive timeout, `keep_alive_seconds`, closes idle connections between requests);
- a connection beyond `max_connections` gets 503 with `Retry-After` as soon as it is
  accepted, before anything is read from it, and is closed;
- malformed HTTP gets uvicorn's 400, as JSON in the API's error shape, and so do an
  HTTP/1.1 request without `Host` (RFC 9112, 3.2) and one whose body cannot be read (say a
  Transfer-Encoding not ending in chunked) unless its response has started;
- requests read before the refused one and not yet answered (pipelined) are answered
  first, in order, then the refusal is sent (issue 24: they were dropped with the connection).

Every refusal is JSON, shaped by `service/web/errors.py`, says `Connection: close`, and then
lingers briefly (reading and discarding) so that the client reads it instead of a reset.

Each response's head goes out with its first body bytes, in one write (coalescing.py), but
a HEAD's, which has none.
uvicorn's protocol is not public API: what of it is used here is in uvicorn_internals.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from service.server.coalescing import CoalescingTransport
from service.server.refusals import MISSING_HOST, framing_problem, refusal
from service.server.uvicorn_internals import HttpToolsProtocol

logger = logging.getLogger(__name__)

# How long a refused connection is read (and discarded) after its response: long enough
# for a client still sending to finish and read the response, short enough to cost nothing.
LINGER_SECONDS = 2.0
# Log "connection cap reached" at most this often: a flood must not flood the log too.
CAP_LOG_INTERVAL_SECONDS = 10.0


class _StopParsingError(Exception):
    """Raised in a parser callback that has refused the request, to stop httptools there."""


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    max_connections: int
    keep_alive_seconds: float  # idle time allowed between two requests (uvicorn applies it)


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection, read with `limits` (set on the class by `protocol_class`)."""

    limits: ConnectionLimits
    _cap_logged_at = 0.0  # class-wide: one worker's connections share the log budget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between a request's first byte and the end of its headers
        self._in_message = False  # between a request's first byte and the end of its body
        self._head_bytes = 0
        self._heads_begun = 0  # in the slice being parsed
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._refusal: bytes | None = None  # written once the responses before it are

    # --- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._log_cap()
            message = f"Too many connections: this server takes {self.limits.max_connections}."
            self._refuse(503, "too_many_connections", message)  # with Retry-After
            return
        self._start_head_timer()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    # --- reading ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and discard
        answered = self.cycle is not None and self.cycle.response_complete
        if self._head_timer is None and (not self._in_message or answered):
            # Bytes that begin the next request, or the rest of a body already answered
            # (say with 401): either must be done within the head timeout.
            self._start_head_timer()
        # Parsed in slices, so that a head is counted as it arrives: at most what is left of
        # the limit while inside one, at most the limit otherwise.
        view = memoryview(data)
        while view and not self._refused and not self.transport.is_closing():
            if self.parser is None or self.parser.should_upgrade():
                return  # as uvicorn: the rest of an `Upgrade` request's bytes are dropped
            in_head, in_message = self._in_head, self._in_message
            size = self.limits.max_header_bytes - (self._head_bytes if in_head else 0)
            piece, view = view[:size], view[size:]
            self._heads_begun = 0
            super().data_received(piece)  # type: ignore[arg-type]  # httptools takes any buffer
            if not self._in_head:
                continue
            if in_head and self._heads_begun == 0:
                self._head_bytes += len(piece)  # the same head as before the slice
            elif self._heads_begun == 1 and not in_message:
                self._head_bytes = len(piece)  # it began with the slice
            # Otherwise it began after another message inside the slice, at an offset the
            # parser does not tell: counted from the next slice on (so at most twice the limit;
            # only pipelined requests get there).
            if self._head_bytes >= self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                message = f"Request line and headers exceed {limit} bytes."
                self._refuse(431, "headers_too_large", message)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._in_message = True
        self._head_bytes = 0
        self._heads_begun += 1

    def on_headers_complete(self) -> None:
        headers = self.headers
        # Clients put Host first: the common case costs one comparison, not a scan.
        if not (headers and headers[0][0] == b"host") and not self._host_optional():
            self._refuse(400, "invalid_http", MISSING_HOST)  # before a cycle is made for it
            raise _StopParsingError  # uvicorn then calls send_400_response: nothing left to do
        self._in_head = False
        self._cancel_head_timer()
        before = self.cycle
        super().on_headers_complete()  # makes the request's cycle; its task runs later
        if self.cycle is not before and self.scope["method"] != "HEAD":
            # A HEAD's response writes no body (uvicorn): its head, alone, is all there is.
            self.cycle.transport = CoalescingTransport(self.transport, self.cycle)  # type: ignore[assignment]

    def _host_optional(self) -> bool:
        """The request has a Host header after all, or is HTTP/1.0, which needs none."""
        has_host = any(name == b"host" for name, _ in self.headers)
        return has_host or self.parser.get_http_version() != "1.1"

    def on_response_complete(self) -> None:
        # Responses complete in order, each starting the next queued request: a refusal
        # waiting for them goes out after the one that leaves the queue empty.
        last = self._refusal is not None and not self.pipeline
        super().on_response_complete()
        if last:
            self._send_refusal()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._in_message and not self._in_head:  # the head was read: is it the framing?
            msg = framing_problem(self.headers) or msg
        self._refuse(400, "invalid_http", msg)

    # --- the head timer --------------------------------------------------------------

    def _start_head_timer(self) -> None:
        self._cancel_head_timer()
        delay = self.limits.header_timeout_seconds
        self._head_timer = self.loop.call_later(delay, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # bytes after a body (a stray CRLF) while it is answered: keep-alive decides
        if not self._in_head:
            self.transport.close()  # it never started a request: nothing to answer
            return
        seconds = self.limits.header_timeout_seconds
        message = f"The request line and headers did not arrive within {seconds:g} s."
        self._refuse(408, "header_timeout", message)

    # --- refusing --------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Refuse the request being read: at once, or after the responses to the requests
        before it on the connection (pipelined), which are answered first."""
        if self._refused:
            return  # refused already (say by a callback, which then stopped the parser)
        self._refused = True
        self._cancel_head_timer()
        waiting = self.cycle is not None and not self.cycle.response_complete
        if waiting and self._in_message and not self._in_head:
            # The bad request's own head was complete, so uvicorn made it a cycle.
            if self.cycle.response_started:
                self.transport.close()  # its response is under way: no room for another
                return
            waiting = self._drop_current_cycle()
        logger.debug("refusing a connection from %s: %d %s", self.client, status, code)
        url = bytes(getattr(self, "url", b""))  # b"" if no request line arrived
        headers = self.server_state.default_headers
        self._refusal = refusal(url, self.root_path, headers, status, code, message)
        if not waiting:
            self._send_refusal()

    def _drop_current_cycle(self) -> bool:
        """Drop the cycle of a request found invalid in its body, whose response has not
        started: True if requests before it are still to be answered."""
        if self.pipeline and self.pipeline[0][0] is self.cycle:
            self.pipeline.popleft()  # queued (the newest at the left): never started
            return True
        # Started, or about to: its app reads a disconnect and what it sends goes nowhere,
        # without the `100 Continue` its first read would write after the refusal.
        self.cycle.disconnected = True
        self.cycle.waiting_for_100_continue = False
        self.cycle.message_event.set()
        return False

    def _send_refusal(self) -> None:
        response, self._refusal = self._refusal, None
        if response is None or self.transport.is_closing():
            return  # the last response closed the connection (`Connection: close`)
        self.transport.write(response)
        self.flow.resume_reading()  # keep reading, to discard, while the client finishes
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _log_cap(self) -> None:
        now = time.monotonic()
        if now - BoundedHttpProtocol._cap_logged_at >= CAP_LOG_INTERVAL_SECONDS:
            BoundedHttpProtocol._cap_logged_at = now
            logger.warning(
                "connection cap reached (%d): refusing new connections with 503",
                self.limits.max_connections,
            )


def protocol_class(limits: ConnectionLimits) -> type[BoundedHttpProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), reading with `limits`."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits})
