"""`python -m service` / `digits-serve`: verify the model, then serve it with uvicorn.

The model is loaded and checked *before* the port is bound, so a missing, corrupt
or mismatched model ends the process at once with one line on stderr and exit
status 1 — an orchestrator sees a failed start, not a server that never gets ready.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from pydantic import ValidationError

from service.errors import ModelLoadError
from service.imaging import allocator
from service.server import workers
from service.settings import Settings

PROG = "digits"


def main(argv: list[str] | None = None) -> int:
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
    # Imported late so that `--help` and settings errors stay instant.
    from service.app import create_app
    from service.middleware.metrics import InferenceMetrics
    from service.runtime.recognizer import Recognizer
    from service.server.shutdown import serve

    recognizer = Recognizer(settings, observer=InferenceMetrics())
    try:
        recognizer.load()
    except ModelLoadError as error:
        return _fail(str(error))
    # One server process per core, forked once the model is verified (service/workers.py).
    count = workers.worker_count(settings.workers)
    listen: dict[str, int] = {}
    children: list[int] = []
    if count > 1:
        try:
            listener = workers.bind_listener(settings.host, settings.port)
        except OSError as error:
            return _fail(f"cannot listen on {settings.host}:{settings.port}: {error.strerror}")
        # Detached: each process's server closes its copy when its drain ends, so the port
        # refuses connections instead of queueing them for no one (service/shutdown.py).
        listen["fd"] = listener.detach()
        children = workers.fork_workers(count)
        if settings.interpreter_threads > 1 and not children:
            # The parent's interpreters' threads did not fork.
            recognizer = Recognizer(settings, observer=InferenceMetrics())
            recognizer.load()
        if children:  # the parent
            workers.reap_children_as_they_die(children)

    def on_drain() -> None:
        recognizer.start_draining()
        workers.forward_signal(children, signal.SIGTERM)

    # SIGTERM drains (readiness 503, still serving), then shuts down gracefully, exit 0.
    serve(
        create_app(settings, recognizer),
        drain_seconds=settings.drain_seconds,
        shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
        on_drain=on_drain,
        **listen,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # The server, not the app, owns the proxy prefix (FastAPI deprecated its own).
        root_path=settings.root_path,
    )
    wait = settings.drain_seconds + settings.shutdown_timeout_seconds + 5
    workers.stop_children(children, timeout=wait)
    return 0


def _parse_arguments(argv: list[str] | None) -> None:
    lines = []
    for name, field in Settings.model_fields.items():
        default = "not set" if field.default is None else field.default
        description = " ".join((field.description or "").split())
        lines.append(f"  DIGITS_{name.upper()} (default: {default})\n      {description}")
    parser = argparse.ArgumentParser(
        prog="digits-serve",
        description="Serve the digit classifier over HTTP. Configured by environment variables.",
        epilog="environment variables:\n" + "\n".join(lines),
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
