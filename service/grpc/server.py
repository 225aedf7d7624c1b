"""The gRPC server beside uvicorn: started on its event loop, drained and stopped with it.

service/server/shutdown.py runs it as a companion of the HTTP server: `start` before
uvicorn binds its port, `drain` on SIGTERM (health turns NOT_SERVING, calls are still
answered), `stop` at the moment the HTTP port closes, with the same grace for in-flight
calls (`shutdown_timeout_seconds`); new calls are then refused (UNAVAILABLE).

With several worker processes (`DIGITS_WORKERS`), every process runs its own gRPC server
on the same port with SO_REUSEPORT, and the kernel spreads new connections among them.
A gRPC channel is one long-lived HTTP/2 connection, so one client channel stays with one
process: clients that want every core open several channels, and these must really be
several connections. gRPC shares one connection among a process's channels that have the
same target and options (its global subchannel pool): each channel needs the option
`grpc.use_local_subchannel_pool` (tritonclient: in `channel_args`, which replaces its
defaults). The kernel places each connection at random, so two connections share one of
two workers half of the time: a few per worker spread the load. SO_REUSEPORT is only set
with several workers, so that a single-process server refuses to start on a port that
another program already holds instead of silently sharing it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from service.grpc.servicer import ApiKeyInterceptor, InferenceServicer, ReadinessHealth
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from service.v2.dataplane import OpenInference

logger = logging.getLogger(__name__)


class GrpcServer:
    """`inference.GRPCInferenceService` and `grpc.health.v1` on `settings.grpc_port`."""

    def __init__(self, settings: Settings, recognizer: Recognizer, *, share_port: bool) -> None:
        self.settings = settings
        self.inference = OpenInference(recognizer)
        self.health = ReadinessHealth(self.inference.is_ready)
        self.share_port = share_port
        self.port: int | None = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        host, port = self.settings.host, self.settings.grpc_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        """Listen and serve; if the port cannot be bound, end the process (exit status 1,
        one line on stderr) as uvicorn does when its own port is taken."""
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        server = grpc.aio.server(
            interceptors=[ApiKeyInterceptor(settings.api_key)] if settings.api_key else None,
            options=[
                ("grpc.so_reuseport", int(self.share_port)),
                # The same bound as REST bodies; a bigger message gets RESOURCE_EXHAUSTED.
                ("grpc.max_receive_message_length", settings.max_body_bytes),
            ],
        )
        server.add_generic_rpc_handlers((InferenceServicer(self.inference).handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as error:  # grpc's way of saying the bind failed
            raise SystemExit(f"digits: error: cannot listen on {self.address} for gRPC") from error
        await server.start()
        self._server = server
        logger.info("gRPC Open Inference Protocol on %s", self.address)

    def drain(self) -> None:
        """SIGTERM: health NOT_SERVING (for `Watch` streams too), calls still answered.
        Called from a signal handler, so it only schedules the work on the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._refresh_health)

    def _refresh_health(self) -> None:
        task = asyncio.ensure_future(self.health.refresh())
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, give those in flight `grace` seconds, then cancel them."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()
        await server.stop(grace)
        logger.info("gRPC server stopped")
