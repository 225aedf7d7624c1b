"""The FastAPI application: every router, and the gateway in front of it, in one place.

`create_app(settings)` builds an app around any model, so tests can point it at
whatever they need; it can also take a `Recognizer` that is already loaded (the
CLI loads before binding the port, so a bad model never starts a server).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from service import __version__
from service.api.routes import STATIC_DIR
from service.api.routes import router as v1_router
from service.api.uploads import router as upload_router
from service.gateway.assembly import build_gateway, check_routes
from service.gateway.openapi import install_openapi
from service.gateway.table import TABLE
from service.middleware.metrics import InferenceMetrics, Metrics
from service.middleware.metrics import router as metrics_router
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from service.v2.routes import router as v2_router
from service.web.handlers import install_error_handler

logger = logging.getLogger(__name__)

ROUTERS: tuple[APIRouter, ...] = (
    v1_router,  # /healthz, /readyz, /v1/model, /v1/predict, the page
    upload_router,  # /v1/predict/upload
    v2_router,  # the Open Inference Protocol
    metrics_router,  # /metrics
)


class DigitsApp(FastAPI):
    """FastAPI, behind the gateway (service/gateway/) rather than inside its own stack.

    Every request passes the gateway's layers; the framework's (error, telemetry and
    body-limit middlewares, routing) run only for the operations it answers. Middlewares
    added with `add_middleware` (or `@app.middleware("http")`) join the gateway, so they
    apply to every request of every operation, those with their own endpoints included.
    """

    table = TABLE

    def __init__(self, **options: Any) -> None:
        self.added_middleware: list[Middleware] = []
        self.gateway: ASGIApp | None = None
        super().__init__(**options)

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        if self.gateway is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.added_middleware.insert(0, Middleware(middleware_class, *args, **kwargs))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gateway is None:
            self.gateway = build_gateway(
                functools.partial(FastAPI.__call__, self),
                self.declared_routes(),
                self.table,
                self.added_middleware,
                settings=self.state.settings,
                recognizer=self.state.recognizer,
                metrics=self.state.metrics,
            )
        await self.gateway(scope, receive, send)

    def declared_routes(self) -> Sequence[BaseRoute]:
        """Every route of the app: its own, and those of the routers it includes."""
        own = [route for route in self.router.routes if isinstance(route, Route | Mount)]
        return [*own, *(route for router in ROUTERS for route in router.routes)]


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

    for router in ROUTERS:
        app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # One handler turns every failure, ours or the framework's, into one JSON shape.
    install_error_handler(app)
    install_openapi(app)
    check_routes(TABLE.operations, app.declared_routes())  # a route without rules: no app
    return app


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
