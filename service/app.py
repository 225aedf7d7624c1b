"""The FastAPI application: every router and the middleware order, in one place.

`create_app(settings)` builds an app around any model, so tests can point it at
whatever they need; it can also take a `Recognizer` that is already loaded (the
CLI loads before binding the port, so a bad model never starts a server).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from service import __version__
from service.api.hot_path import PredictHotPath, predict_route
from service.api.routes import STATIC_DIR
from service.api.routes import router as v1_router
from service.api.uploads import router as upload_router
from service.middleware.admission import LoadShedding
from service.middleware.auth import ApiKeyAuth
from service.middleware.body_limit import BodySizeLimit
from service.middleware.head import HeadAsGet
from service.middleware.metrics import InferenceMetrics, Metrics, MetricsMiddleware
from service.middleware.metrics import router as metrics_router
from service.middleware.request_timeout import RequestTimeout
from service.middleware.security_headers import SecurityHeaders
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from service.v2.routes import router as v2_router
from service.web.handlers import install_error_handler
from service.web.openapi import install_openapi

logger = logging.getLogger(__name__)


class DigitsApp(FastAPI):
    """FastAPI, behind our own middlewares (`_gateway`) rather than inside its stack.

    Every request passes our layers first; the framework's own (error, telemetry and
    body-limit middlewares, routing) run only for requests that reach it. The hot path
    for valid `/v1/predict` requests sits between the two (service/api/hot_path.py): those
    never pay for the framework's layers, which cost more than a 28×28 digit's inference.
    """

    gateway: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gateway(scope, receive, send)


def create_app(settings: Settings | None = None, recognizer: Recognizer | None = None) -> FastAPI:
    """The service for `settings`; loads the model in the background unless `recognizer` is."""
    settings = settings or Settings()
    recognizer = recognizer or Recognizer(settings, observer=InferenceMetrics())
    app = DigitsApp(
        title="digits",
        summary="Handwritten-digit recognition with a LiteRT model.",
        version=__version__,
        lifespan=_lifespan,
        # /docs is served from the package (install_openapi); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.recognizer = recognizer
    app.state.metrics = Metrics(recognizer)

    app.include_router(v1_router)  # /healthz, /readyz, /v1/model, /v1/predict, the page
    app.include_router(upload_router)  # /v1/predict/upload
    app.include_router(v2_router)  # the Open Inference Protocol
    app.include_router(metrics_router)  # /metrics
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # One handler turns every failure, ours or the framework's, into one JSON shape.
    install_error_handler(app)
    install_openapi(app)

    app.gateway = _gateway(app, settings, recognizer)
    return app


def _gateway(app: DigitsApp, settings: Settings, recognizer: Recognizer) -> ASGIApp:
    """Our middlewares, around the hot path, around the framework. From the outside in:
    the security headers (on every answer), metrics (every request counted, the refused
    ones too: 401, 413, 503, 504), HEAD routed as GET, the API key (an unauthenticated
    request costs nothing more), load shedding (503 before a body is read), the deadline,
    the body limit (413 before a body is read); then valid /v1/predict requests are
    answered, and the rest go to FastAPI, whose error handler shapes its failures."""
    framework: ASGIApp = functools.partial(FastAPI.__call__, app)
    gateway: ASGIApp = PredictHotPath(framework, recognizer, predict_route(v1_router.routes))
    gateway = BodySizeLimit(gateway, max_bytes=settings.max_body_bytes)
    gateway = RequestTimeout(gateway, seconds=settings.request_timeout_seconds)
    gateway = LoadShedding(gateway, admission=recognizer.admission)
    gateway = ApiKeyAuth(gateway, api_key=settings.api_key)
    gateway = HeadAsGet(gateway)
    gateway = MetricsMiddleware(gateway, metrics=app.state.metrics)
    return SecurityHeaders(gateway)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    recognizer: Recognizer = app.state.recognizer
    if recognizer.state == "loading":
        # Load off the event loop and without blocking start-up: /healthz answers at once,
        # /readyz turns 200 when the model is verified and warm.
        threading.Thread(
            target=_load_in_background,
            args=(recognizer,),
            name="digits-model-loader",
            daemon=True,
        ).start()
    yield


def _load_in_background(recognizer: Recognizer) -> None:
    try:
        recognizer.load()
    except Exception as error:
        logger.error("model not loaded: %s", error)
