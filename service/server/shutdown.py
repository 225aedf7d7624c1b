"""Graceful shutdown: drain on SIGTERM, then let uvicorn finish in-flight requests.

Kubernetes sends SIGTERM at the same moment it starts removing the pod from the
Service's endpoints; load balancers and kube-proxy learn of it a few seconds later.
A server that closes its port at once refuses the requests still routed to it, so
on the first SIGTERM this server:

1. reports not-ready (`/readyz` → 503) and asks keep-alive clients to reconnect
   elsewhere (`Connection: close` on every response) — while still serving;
2. after `drain_seconds`, hands over to uvicorn's own graceful shutdown: the port
   closes (new connections are refused; those the kernel had queued on it are served,
   accept_queue.py), in-flight requests finish (at most `shutdown_timeout_seconds`), the
   lifespan ends;
3. exits with status 0 — uvicorn alone re-raises the signal and dies by it (143),
   which an orchestrator would count as a crash.

A second SIGTERM skips the rest of the drain; SIGINT (Ctrl-C) behaves as in uvicorn.
SIGHUP is logged and ignored: settings and the model are read once, at start, so there is
nothing to reload (restart the server to change them). A worker whose supervisor died
(`PARENT_GONE_SIGNAL`, see workers.py) drains as on its first SIGTERM, and never cuts a
drain under way short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any, Protocol

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.server.accept_queue import close_once_accepted
from service.server.heartbeat import Heartbeat
from service.server.protocol import ConnectionLimits, protocol_class
from service.server.workers import PARENT_GONE_SIGNAL

logger = logging.getLogger(__name__)

ACCEPTED_GRACE_SECONDS = 0.25


class Companion(Protocol):
    """Another server on the same event loop (the gRPC one, service/grpc/server.py): started
    before uvicorn, stopped when uvicorn closes its port, with the same grace."""

    async def start(self) -> None: ...

    def drain(self) -> None:
        """SIGTERM: report not ready, still serving (called in the signal handler)."""

    async def stop(self, grace: float) -> None: ...


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM starts a drain instead of an immediate shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain_seconds: float,
        on_drain: Callable[[], None],
        companions: Sequence[Companion] = (),
        heartbeat: Heartbeat | None = None,
    ) -> None:
        super().__init__(config)
        self.companions = companions
        self.heartbeat = heartbeat  # a forked worker's, for its supervisor (heartbeat.py)
        self.drain_seconds = drain_seconds
        self.on_drain = on_drain
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[Any] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        hangup = signal.signal(signal.SIGHUP, _log_hangup)
        parent_gone = signal.signal(PARENT_GONE_SIGNAL, self.handle_exit)
        # From the loop's first turn to its last, start-up and shutdown included.
        beating = asyncio.ensure_future(self.heartbeat.keep_beating()) if self.heartbeat else None
        try:
            for companion in self.companions:
                await companion.start()
            await super().serve(sockets)
        finally:
            await self._stop_companions()  # stopped already in `shutdown`, unless never started
            if beating:
                beating.cancel()
            signal.signal(signal.SIGHUP, hangup)
            signal.signal(PARENT_GONE_SIGNAL, parent_gone)

    async def _stop_companions(self) -> None:
        grace = float(self.config.timeout_graceful_shutdown or 0)
        await asyncio.gather(*(companion.stop(grace) for companion in self.companions))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == PARENT_GONE_SIGNAL:
            if self.draining or self.should_exit:
                return  # already on its way out: the supervisor's end changes nothing
            logger.warning("the supervisor process is gone: draining and exiting")
        elif sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        # Not recorded in uvicorn's captured signals: it would re-raise SIGTERM after the
        # shutdown and the process would die by it instead of exiting 0.
        if self.draining or self._loop is None or self.drain_seconds <= 0:
            self.draining = True
            self.should_exit = True
            return
        self.draining = True
        self.on_drain()
        for companion in self.companions:
            companion.drain()
        logger.info("shutdown signal: draining for %g s before shutting down", self.drain_seconds)
        # This runs in a signal handler: call_soon_threadsafe is the loop's safe way in.
        self._loop.call_soon_threadsafe(self._loop.call_later, self.drain_seconds, self._end_drain)

    def _end_drain(self) -> None:
        logger.info("drain over: closing the port and finishing in-flight requests")
        self.should_exit = True

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # Companions close their ports now too, and finish in-flight calls alongside.
        stopping = asyncio.ensure_future(self._stop_companions())
        # The port closes now (a worker's own socket too, workers.py), not after the grace
        # below: while it is open the kernel keeps queueing connections on it. Those it had
        # queued are served, not reset (accept_queue.py).
        await close_once_accepted(self, sockets or [])
        # uvicorn then closes every connection without a request under way, including one
        # accepted a moment ago whose request is still in the socket buffer: give those a
        # moment to arrive, so they are answered rather than dropped.
        await asyncio.sleep(ACCEPTED_GRACE_SECONDS)
        await super().shutdown(sockets)
        await stopping


class CloseConnectionsWhileDraining:
    """Adds `Connection: close` to responses once draining, so keep-alive clients open
    their next connection to another replica instead of holding on to this one."""

    def __init__(self, app: ASGIApp, is_draining: Callable[[], bool]) -> None:
        self.app = app
        self.is_draining = is_draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_closing(message: Message) -> Awaitable[None]:
            # A plain function handing back `send`'s awaitable: no coroutine of its own.
            if message["type"] == "http.response.start" and self.is_draining():
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            return send(message)

        await self.app(scope, receive, send_closing)


def _log_hangup(signum: int, frame: FrameType | None) -> None:
    logger.warning("SIGHUP ignored: settings and the model are read at start; restart to change")


def serve(
    app: ASGIApp,
    *,
    drain_seconds: float,
    shutdown_timeout_seconds: float,
    on_drain: Callable[[], None],
    limits: ConnectionLimits,
    sockets: list[Any] | None = None,
    companions: Sequence[Companion] = (),
    heartbeat: Heartbeat | None = None,
    **uvicorn_options: Any,
) -> None:
    """Run `app` with uvicorn until SIGTERM (drained) or SIGINT; returns on a clean exit.

    On `sockets` (a worker's own listening socket) if given, else on uvicorn's host and port.
    """
    server: DrainingServer | None = None

    def is_draining() -> bool:
        return server is not None and server.draining

    config = uvicorn.Config(
        CloseConnectionsWhileDraining(app, is_draining),
        # uvicorn types it as int but only hands it to asyncio.wait_for.
        timeout_graceful_shutdown=shutdown_timeout_seconds,  # type: ignore[arg-type]
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive_seconds,  # type: ignore[arg-type]  # a float works
        server_header=False,  # no `server: uvicorn`: nothing to tell a scanner
        ws="none",  # no WebSocket route: an `Upgrade` request is answered as plain HTTP
        **uvicorn_options,
    )
    server = DrainingServer(
        config,
        drain_seconds=drain_seconds,
        on_drain=on_drain,
        companions=companions,
        heartbeat=heartbeat,
    )
    # uvicorn re-raises SIGINT after its graceful shutdown; Ctrl-C is a normal way out.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets)
