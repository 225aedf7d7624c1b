"""Closing a server's port without resetting the connections queued on it.

The kernel completes TCP handshakes by itself and queues the connections on the listening
socket until the process accepts them; closing the socket resets every one still queued.
With SO_REUSEPORT a worker's socket keeps receiving its share of new connections until the
moment it closes, so a worker closing its port under load reset a few clients each time
(issue 24: 29 of ~3,000 connection-per-request calls across a SIGTERM). The queue cannot be
handed to the other workers (the kernel migrates it only with the `tcp_migrate_req` sysctl),
and waiting for the event loop to empty it is not enough: under a steady stream of new
connections it is never empty when the loop looks. So the port's last descriptor accepts
what is queued, synchronously, and closes as soon as accept() finds nothing more. What the
kernel still resets is a handshake in progress at that moment, or one completing between
those two system calls: 4 connections in 60 SIGTERMs, each 0.1-0.2 ms old, under the load
that reset 14-28 in each before (tests/service/server/test_shutdown.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import uvicorn

from service.server.uvicorn_internals import new_http_protocol

logger = logging.getLogger(__name__)


async def close_once_accepted(server: uvicorn.Server, sockets: Sequence[socket.socket]) -> None:
    """Close `server`'s listeners and `sockets` (a worker's own listening sockets); the
    connections queued on them until the close are served as accepted ones are."""
    loop = asyncio.get_running_loop()
    # A descriptor of ours keeps each listening socket open once the loop has let go of it:
    # the kernel resets its queue only when the last one closes.
    listeners = [sock.dup() for port in server.servers for sock in port.sockets]
    for port in server.servers:
        port.close()
    for sock in sockets:
        sock.close()
    accepted = [connection for listener in listeners for connection in _accept_then_close(listener)]
    if accepted:
        logger.info("serving %d connection(s) queued when the port closed", len(accepted))
    for connection in accepted:
        try:
            await loop.connect_accepted_socket(lambda: new_http_protocol(server), connection)
        except OSError as error:  # gone meanwhile: the others are still served
            logger.info("a connection queued on the closed port is gone: %s", error)
            connection.close()


def _accept_then_close(listener: socket.socket) -> list[socket.socket]:
    """Every connection waiting in `listener`'s accept queue; it is closed as soon as that
    is empty, with nothing in between."""
    listener.setblocking(False)
    accepted: list[socket.socket] = []
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                listener.close()
                return accepted
            except ConnectionAbortedError:
                continue  # reset by its client while queued: nothing to serve
            connection.setblocking(False)
            accepted.append(connection)
    except OSError as error:  # out of descriptors: those left are reset with the close
        logger.warning("could not accept the connections queued on the port: %s", error)
        return accepted
    finally:
        listener.close()
