"""Prometheus metrics: a registry per app, a pure ASGI middleware, and `GET /metrics`.

Each app has its own registry, so the many apps a test run builds never clash in
prometheus_client's global one. Code deep inside a request (the runtime, through
`InferenceMetrics`) records into the app serving that request through the module-level
proxies below, e.g. `QUEUE_WAIT_SECONDS.observe(seconds)`: the middleware puts the
app's `Metrics` in a context variable, which asyncio tasks and `run_in_threadpool`
copy, so observing from a task or worker thread started by the request works too.
Outside any request the proxies do nothing.

A server with several worker processes (`python -m service`, service/workers.py) sets
`PROMETHEUS_MULTIPROC_DIR` before prometheus_client is imported: every process then
writes its values to files there, and `/metrics`, whichever worker answers it, merges
them all (counters and histograms summed) — one worker's counts alone would read to
Prometheus as a counter reset at every scrape that lands on another worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.operation import operation_of

if TYPE_CHECKING:
    from service.runtime.recognizer import Recognizer

# Requests take ~1 ms (one small image) to ~1 s (hundreds of photos).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# One interpreter call: ~0.1 ms per image, a few hundred images at most.
INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
IMAGE_COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Unknown URLs share one label value: raw paths would let any client create series.
UNMATCHED_ROUTE = "unmatched"
# Likewise methods: the HTTP parser takes 34 (PROPFIND, MKCALENDAR, SOURCE...), and raw
# ones made 805 series of 1,610 junk requests (1.6 MB, a 0.25 s scrape on the event loop).
# The methods the app serves (HEAD as GET; OPTIONS for a CORS middleware, if one is
# added) keep their names, every other one is `other`.
LABELLED_METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})
OTHER_METHOD = "other"

_current: ContextVar[Metrics | None] = ContextVar("digits_metrics", default=None)


def _use_cached_process_id() -> None:
    """In multi-process mode, prometheus_client asks the kernel for the process id at every
    value it writes, to notice a fork: 9 system calls per prediction request (2 per
    histogram observation). The id is read once here and again in each forked child instead
    (`os.register_at_fork`), which is exactly when it changes; prometheus_client takes such
    a function for this purpose (`MultiProcessValue(process_identifier=...)`)."""
    if values.ValueClass is values.MutexValue:
        return  # single process: nothing asks for the id
    process_id = os.getpid()

    def forked() -> None:
        nonlocal process_id
        process_id = os.getpid()

    os.register_at_fork(after_in_child=forked)
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: process_id)


_use_cached_process_id()


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        folder = _multiprocess_folder()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "digits_http_requests",
            "HTTP requests answered, by route template and status.",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "digits_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and status.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.images = Histogram(
            "digits_images_per_request",
            "Images in each prediction request (/v1 and /v2).",
            buckets=IMAGE_COUNT_BUCKETS,
            registry=registry,
        )
        self.inference = Histogram(
            "digits_inference_seconds",
            "Time the interpreter takes for one batch of preprocessed images.",
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "digits_queue_wait_seconds",
            "Time images wait for the interpreter (micro-batching queue).",
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        self.shed = Counter(
            "digits_requests_shed",
            "Requests refused with 503 `overloaded` (load shedding) before any of their "
            "images was decoded: too many images, or request-body bytes, in flight.",
            registry=registry,
        )
        self.worker_processes = Gauge(
            "digits_worker_processes",
            "Server processes answering requests, all counted in every scrape.",
            registry=registry,
            multiprocess_mode="livesum",  # each live worker adds its 1; a dead one is gone
        )
        self.worker_processes.set(1)
        if folder is not None:
            # Only the files hold every worker's values; the metrics above write to them.
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=folder)
        # Read at scrape time from the worker answering: all workers serve the same model
        # (forked once it was verified) and start draining together.
        self.registry.register(_ModelCollector(recognizer))
        # Labelled children, cached: `labels()` costs a lock and a few µs per request.
        # Bounded: routes are templates, methods (LABELLED_METHODS or `other`) and statuses
        # are few.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram for one label set."""
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            labels = (method, route, str(status))
            found = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._series[key] = found
        return found

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _multiprocess_folder() -> str | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder is not None and values.ValueClass is values.MutexValue:
        # The values of metrics made now would not reach the files: each scrape would
        # again report one process, silently.
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported")
    return folder


class AppHistogram:
    """Observes into the histogram `attribute` of the app serving the current request."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def observe(self, value: float) -> None:
        metrics = _current.get()
        if metrics is not None:
            histogram: Histogram = getattr(metrics, self.attribute)
            histogram.observe(value)


class AppCounter:
    """Counts into the counter `attribute` of the app serving the current request."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def inc(self) -> None:
        metrics = _current.get()
        if metrics is not None:
            counter: Counter = getattr(metrics, self.attribute)
            counter.inc()


IMAGES_PER_REQUEST = AppHistogram("images")
INFERENCE_SECONDS = AppHistogram("inference")
QUEUE_WAIT_SECONDS = AppHistogram("queue_wait")
REQUESTS_SHED = AppCounter("shed")


class InferenceMetrics:
    """The runtime's timings (its `InferenceObserver`), into the serving app's histograms."""

    def inference_done(self, seconds: float) -> None:
        INFERENCE_SECONDS.observe(seconds)

    def queue_waited(self, seconds: float) -> None:
        QUEUE_WAIT_SECONDS.observe(seconds)

    def request_shed(self) -> None:
        REQUESTS_SHED.inc()

    def images_requested(self, count: int) -> None:
        IMAGES_PER_REQUEST.observe(count)


class _ModelCollector:
    """The served model, read at scrape time: it may still be loading when the app starts."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def collect(self) -> Iterator[Metric]:
        state = self.recognizer.state
        yield GaugeMetricFamily(
            "digits_model_ready", "1 when the model is ready for traffic.", value=state == "ready"
        )
        if state in ("ready", "draining"):
            model = self.recognizer.model
            artifact = model.artifact
            yield InfoMetricFamily(
                "digits_model",
                "The model being served.",
                value={
                    "name": model.card.name,
                    "version": model.card.version,
                    "file": artifact.file,
                    "sha256": artifact.sha256,
                },
            )


class MetricsMiddleware:
    """Counts and times every HTTP request. Pure ASGI: it never buffers a body."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                method = scope["method"]
                if method not in LABELLED_METHODS:
                    method = OTHER_METHOD
                counter, histogram = self.metrics.series(method, _route_template(scope), status)
                counter.inc()
                histogram.observe(time.perf_counter() - start)

        def send_and_note_status(message: Message) -> Awaitable[None]:
            # A plain function handing back `send`'s awaitable: no coroutine of its own.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last bytes go: a client holding its whole response that then
                # scrapes (another worker, perhaps) must find the request counted.
                record()
            return send(message)

        token = _current.set(self.metrics)
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            _current.reset(token)
            record()  # no complete response: an error, or the client went away


def _route_template(scope: Scope) -> str:
    # The gateway records the matched operation in the scope it was given (the same dict).
    operation = operation_of(scope)
    return operation.path if operation is not None else UNMATCHED_ROUTE


router = APIRouter()


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    app_metrics: Metrics = request.app.state.metrics
    return Response(app_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
