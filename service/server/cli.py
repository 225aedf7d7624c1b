"""`python -m service` / `digits-serve`: verify the model, then serve it with uvicorn.

The model is loaded and checked *before* the port is bound, so a missing, corrupt
or mismatched model ends the process at once with one line on stderr and exit
status 1 — an orchestrator sees a failed start, not a server that never gets ready.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.errors import ModelLoadError
from service.imaging import allocator
from service.server import workers
from service.settings import Settings

if TYPE_CHECKING:
    from service.runtime.recognizer import Recognizer
    from service.server.heartbeat import Heartbeat

PROG = "digits"
logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    # Start-up builds ~10^5 objects that live as long as the process (FastAPI's, pydantic's
    # and numpy's modules and models); collecting while they are made cost about a quarter
    # of the time to ready (AMD EPYC). The collector is off until the server is built
    # (`_collect_from_now_on`), and on again whatever happens.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    _parse_arguments(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        return _fail(_settings_problem(error))
    logging.basicConfig(
        level=logging.DEBUG if settings.log_level == "trace" else settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Before any image is decoded, so that their memory goes back to the system once freed.
    allocator.return_big_blocks_to_the_system()
    # Before anything imports prometheus_client, which reads it then (service/workers.py).
    with workers.metrics_folder():
        return _serve(settings)


def _serve(settings: Settings) -> int:
    # Imported late so that `--help` and settings errors stay instant; the app's modules
    # too, before the workers fork, so that they are imported once, with the collector off.
    import service.app
    import service.server.shutdown  # noqa: F401
    from service.middleware.metrics import InferenceMetrics
    from service.runtime.recognizer import Recognizer
    from service.server.supervisor import Supervisor

    recognizer = Recognizer(settings, observer=InferenceMetrics())
    try:
        recognizer.load()
    except ModelLoadError as error:
        return _fail(str(error))
    count = workers.worker_count(settings.workers)
    if count == 1:
        _collect_from_now_on()
        _run_server(settings, recognizer, shared=False, host=settings.host, port=settings.port)
        return 0
    # One server process per core, forked once the model is verified (server/workers.py).
    try:
        port = workers.claim_port(settings.host, settings.port)
    except OSError as error:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {error.strerror}")
    logger.info("listening on %s:%d with %d worker processes", settings.host, port, count)

    def run_worker(sock: socket.socket, heartbeat: Heartbeat | None) -> int:
        served = recognizer
        if settings.interpreter_threads > 1:  # the parent's interpreters' threads did not fork
            served = Recognizer(settings, observer=InferenceMetrics())
            served.load()
        _run_server(settings, served, shared=True, sockets=[sock], heartbeat=heartbeat)
        return 0

    _collect_from_now_on()  # before the fork: the workers inherit it
    return Supervisor(
        count,
        lambda: workers.worker_socket(settings.host, port),
        run_worker,
        restart_limit=settings.worker_restart_limit,
        stop_timeout=settings.drain_seconds + settings.shutdown_timeout_seconds + 5,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
    ).run()


def _collect_from_now_on() -> None:
    """The end of start-up: what it built lives as long as the process. Frozen, the
    collector never walks it again, and forked workers do not copy its memory pages by
    touching them (the `gc` module's advice for servers that fork)."""
    gc.freeze()
    gc.enable()


def _run_server(
    settings: Settings,
    recognizer: Recognizer,
    *,
    shared: bool,
    heartbeat: Heartbeat | None = None,
    **listen: Any,
) -> None:
    """One server process: HTTP on `listen`, and gRPC when configured (its port `shared` by
    the workers with SO_REUSEPORT, like their HTTP sockets); a forked worker's event loop
    beats its `heartbeat` for the supervisor."""
    from service.app import create_app
    from service.server.protocol import ConnectionLimits
    from service.server.shutdown import Companion, serve

    companions: list[Companion] = []
    if settings.grpc_port:
        # Imported only now, in the worker: gRPC's threads must not be started before a fork.
        from service.grpc.server import GrpcServer

        companions.append(GrpcServer(settings, recognizer, share_port=shared))

    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        max_connections=settings.max_connections,
        keep_alive_seconds=settings.keep_alive_seconds,
    )
    # SIGTERM drains (readiness 503, still serving), then shuts down gracefully, exit 0.
    serve(
        create_app(settings, recognizer),
        drain_seconds=settings.drain_seconds,
        shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
        on_drain=recognizer.start_draining,
        limits=limits,
        companions=companions,  # the gRPC server, if any
        heartbeat=heartbeat,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # The server, not the app, owns the proxy prefix (FastAPI deprecated its own).
        root_path=settings.root_path,
        **listen,
    )


class _ArgumentParser(argparse.ArgumentParser):
    def format_help(self) -> str:
        # The settings' descriptions are read from the source only when help is asked for.
        from service.settings_doc import setting_descriptions

        descriptions = setting_descriptions()
        lines = []
        for name, field in Settings.model_fields.items():
            default = "not set" if field.default is None else field.default
            description = descriptions.get(name, "")
            lines.append(f"  DIGITS_{name.upper()} (default: {default})\n      {description}")
        self.epilog = "environment variables:\n" + "\n".join(lines)
        return super().format_help()


def _parse_arguments(argv: list[str] | None) -> None:
    parser = _ArgumentParser(
        prog="digits-serve",
        description="Serve the digit classifier over HTTP. Configured by environment variables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)


def _settings_problem(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = "DIGITS_" + "_".join(str(part) for part in item["loc"]).upper()
        problems.append(f"{name}: {item['msg']}")
    return "invalid setting " + "; ".join(problems)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
