"""uvicorn's internals that the server relies on, all named here.

uvicorn's public API is `uvicorn.run`, `Config` and `Server`; its HTTP protocol (what reads
the requests and writes the responses of each connection) is not, and may change in any
release. protocol.py subclasses it to bound request heads and connections, coalescing.py
replaces the transport a response is written to, refusals.py writes the protocol layer's own
responses. They import uvicorn's internals from here only, and every attribute of them that
protocol.py and coalescing.py use is listed below, so that:

- pyproject.toml pins uvicorn to the minor version this was written and tested against;
- tests/service/server/test_private_apis.py checks each entry against the installed uvicorn,
  naming what moved, and checks that the two modules use nothing that is not listed.

Relied on beyond names (the same test drives a real protocol instance through a request):
httptools calls the `on_*` callbacks as it parses; `on_headers_complete` leaves a new cycle
in `.cycle` whose ASGI task has not run yet; the cycle writes through its own `.transport`,
a response's head in one write once `response_started` is set, and then calls the
protocol's `on_response_complete`; malformed HTTP reaches `send_400_response(msg)`.
And, checked end to end on a real server by tests/service/server/test_protocol.py (issue 24):
every body message writes to the cycle's transport, if only b"", except a HEAD's, which
writes nothing; an exception raised in `on_headers_complete` stops the parser and reaches
`send_400_response`; a request read while another is answered waits in `pipeline` (the
newest at the left), started from `on_response_complete` one at a time; a cycle marked
`disconnected` writes nothing more, and its app, woken by `message_event`, reads a disconnect
(`100 Continue` aside, written on its first read while `waiting_for_100_continue`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

if TYPE_CHECKING:
    import uvicorn

__all__ = ["STATUS_LINE", "HttpToolsProtocol", "RequestResponseCycle"]

MODULE = "uvicorn.protocols.http.httptools_impl"

_PROTOCOL = "service/server/protocol.py"
_COALESCING = "service/server/coalescing.py"
_REFUSALS = "service/server/refusals.py"
_ACCEPT_QUEUE = "service/server/accept_queue.py"


class Internal(NamedTuple):
    """An attribute of uvicorn's that is relied on, and what relies on it (said if it goes)."""

    name: str  # dotted when reached through another attribute, as in "flow.resume_reading"
    used: str
    parameters: tuple[str, ...] | None = None  # a method's, after `self`, as uvicorn names them


# The names imported above, from MODULE.
MODULE_NAMES = (
    Internal("HttpToolsProtocol", f"{_PROTOCOL} subclasses it"),
    Internal("RequestResponseCycle", f"{_COALESCING} wraps the transport it writes to"),
    Internal("STATUS_LINE", f"{_REFUSALS} begins refusals with it"),
)

# HttpToolsProtocol's methods that BoundedHttpProtocol overrides, with the parameters uvicorn
# and httptools call them with. All but send_400_response extend uvicorn's, through super().
OVERRIDDEN = (
    Internal("connection_made", f"{_PROTOCOL} overrides it (connection cap)", ("transport",)),
    Internal("connection_lost", f"{_PROTOCOL} overrides it (head timer)", ("exc",)),
    Internal("data_received", f"{_PROTOCOL} overrides it (head size)", ("data",)),
    Internal("on_message_begin", f"{_PROTOCOL} overrides it (a head begins)", ()),
    Internal("on_headers_complete", f"{_PROTOCOL} overrides it (a head ends)", ()),
    Internal("on_message_complete", f"{_PROTOCOL} overrides it (a body ends)", ()),
    Internal("on_response_complete", f"{_PROTOCOL} overrides it (a refusal waits)", ()),
    Internal("send_400_response", f"{_PROTOCOL} overrides it (400 as JSON)", ("msg",)),
)

# Attributes of a connected HttpToolsProtocol, during a request, that BoundedHttpProtocol
# reads or calls. `transport` is asyncio's and `parser` httptools': their own methods are
# public API, so only the attributes holding them are listed.
PROTOCOL_ATTRIBUTES = (
    Internal("client", f"{_PROTOCOL} logs refusals with it"),
    Internal("connections", f"{_PROTOCOL} counts it for the connection cap"),
    Internal("cycle", f"{_PROTOCOL} reads the current request's cycle from it"),
    Internal("flow.resume_reading", f"{_PROTOCOL} calls it to read on while refusing"),
    Internal("headers", f"{_PROTOCOL} looks for Host, and Transfer-Encoding in a 400, in it"),
    Internal("loop", f"{_PROTOCOL} schedules its timers on it"),
    Internal("parser.get_http_version", f"{_PROTOCOL} lets HTTP/1.0 go without Host"),
    Internal("parser.should_upgrade", f"{_PROTOCOL} stops feeding the parser at an upgrade"),
    Internal("pipeline", f"{_PROTOCOL} drops an invalid queued request, refuses once it is empty"),
    Internal("root_path", f"{_PROTOCOL} shapes refusals with it"),
    Internal("scope", f"{_PROTOCOL} reads the method there, not to coalesce a HEAD's response"),
    Internal("server_state.default_headers", f"{_PROTOCOL} sends them with refusals"),
    Internal("transport", f"{_PROTOCOL} writes refusals to it"),
    Internal("url", f"{_PROTOCOL} shapes refusals by the request's path"),
)

# Attributes of the RequestResponseCycle in `HttpToolsProtocol.cycle`.
CYCLE_ATTRIBUTES = (
    Internal("disconnected", f"{_PROTOCOL} sets it on a request it refuses after its head"),
    Internal("message_event", f"{_PROTOCOL} sets it to wake that request's app to a disconnect"),
    Internal("response_complete", f"{_PROTOCOL} tells from it whether a response is under way"),
    Internal(
        "response_started",
        f"{_COALESCING} holds the write that follows its setting; {_PROTOCOL} refuses after it",
    ),
    Internal("waiting_for_100_continue", f"{_PROTOCOL} clears it on a request it refuses"),
    Internal("transport", f"{_PROTOCOL} replaces it with {_COALESCING}'s CoalescingTransport"),
)

# Attributes of a started uvicorn.Server (and its Config) that new_http_protocol reads to
# make a connection's protocol as `Server.startup` does, for the connections that
# accept_queue.py takes off a closing port. (`Server.servers`, the listening sockets, is set
# at start-up only; shutdown.py and accept_queue.py read it, and test_shutdown.py drives it.)
SERVER_ATTRIBUTES = (
    Internal("config.http_protocol_class", f"{_ACCEPT_QUEUE} makes each connection's protocol"),
    Internal("server_state", f"{_ACCEPT_QUEUE} passes it to the protocol"),
    Internal("lifespan.state", f"{_ACCEPT_QUEUE} passes it to the protocol as app_state"),
)
# HttpToolsProtocol's keyword parameters that new_http_protocol passes.
PROTOCOL_PARAMETERS = ("config", "server_state", "app_state")


def new_http_protocol(server: uvicorn.Server) -> asyncio.Protocol:
    """What uvicorn's `Server.startup` makes for each connection its listeners accept."""
    protocol: asyncio.Protocol = server.config.http_protocol_class(  # type: ignore[call-arg]
        config=server.config, server_state=server.server_state, app_state=server.lifespan.state
    )
    return protocol
