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
- malformed HTTP gets uvicorn's 400, as JSON in the API's error shape.

Every refusal is JSON, shaped by `service/web/errors.py`, says `Connection: close`, and then
lingers briefly (reading and discarding) so that the client reads it instead of a reset.

Each response's head goes out with its first body bytes, in one write (coalescing.py).
uvicorn's protocol is not public API: what of it is used here is in uvicorn_internals.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from service.gateway.table import TABLE
from service.server.coalescing import CoalescingTransport
from service.server.uvicorn_internals import STATUS_LINE, HttpToolsProtocol
from service.web.errors import error_response_for
from service.web.operation import record, route_path

logger = logging.getLogger(__name__)

# How long a refused connection is read (and discarded) after its response: long enough
# for a client still sending to finish and read the response, short enough to cost nothing.
LINGER_SECONDS = 2.0
# Log "connection cap reached" at most this often: a flood must not flood the log too.
CAP_LOG_INTERVAL_SECONDS = 10.0


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
        self._in_head = False
        self._cancel_head_timer()
        before = self.cycle
        super().on_headers_complete()  # makes the request's cycle; its task runs later
        if self.cycle is not before:
            self.cycle.transport = CoalescingTransport(self.transport, self.cycle)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        transport = self.cycle.transport if self.cycle is not None else None
        if isinstance(transport, CoalescingTransport):
            transport.flush()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
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
        self._refused = True
        self._cancel_head_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is under way on this connection: no room for another one.
            self.transport.close()
            return
        logger.debug("refusing a connection from %s: %d %s", self.client, status, code)
        # Shaped as the path's operation is (the table's rules) when the request line
        # arrived, else as `/v1`.
        path = bytes(getattr(self, "url", b"")).split(b"?", 1)[0].decode("latin-1")
        scope: dict[str, Any] = {"type": "http", "path": path, "root_path": self.root_path}
        operation, rules, _ = TABLE.match("GET", route_path(scope))
        record(scope, operation, rules)
        response = error_response_for(scope, status, code, message)
        content = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *response.raw_headers]:
            content += [name, b": ", value, b"\r\n"]
        content += [b"connection: close\r\n\r\n", bytes(response.body)]
        self.transport.write(b"".join(content))
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
