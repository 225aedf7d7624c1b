"""What plugs the service into tools users already run, installed on the app in one call.

The Open Inference Protocol (`/v2`, for Triton/KServe clients), multipart uploads
(`/v1/predict/upload`, for HTML forms and `curl -F`), Prometheus metrics (`/metrics`)
and an OpenAPI document that client generators can trust.
"""

from __future__ import annotations

from fastapi import FastAPI

from service.metrics import Metrics, MetricsMiddleware
from service.metrics import router as metrics_router
from service.openapi_schema import install_openapi
from service.upload_routes import router as upload_router
from service.v2 import router as v2_router


def install_interop(app: FastAPI) -> None:
    """Add the routes, and the metrics middleware as the outermost one (call it last):
    requests refused by any other middleware (401, 413, 504) are counted too."""
    app.include_router(upload_router)
    app.include_router(v2_router)
    app.include_router(metrics_router)
    app.state.metrics = Metrics(app.state.predictor)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_openapi(app)
