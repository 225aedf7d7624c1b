"""Every operation of the service, once, with its rules and what answers it.

Read a row as: `METHOD path`, whose errors take the `protocol`'s shape, which needs the API
key or not, may be shed under load or not, and is answered by its own endpoint or (none
named) by the framework's route of the same method and path. The app refuses to start if
a FastAPI route has no row here, or a row has no route (service/gateway/assembly.py), so
a route cannot be added without its rules. The gRPC methods' rules are at the end.

The gateway matches each request against these rows once (service/gateway/matcher.py);
the layers read the rules from the request, never from the URL.
"""

from __future__ import annotations

from service.api.predict import PredictEndpoint
from service.gateway.matcher import OperationTable
from service.v2.infer import InferEndpoint
from service.web.operation import OPEN, Fallback, Operation, Rules

# The rules, by kind of operation.
# OPEN (service/web/operation.py): probes, metrics, docs, the page: never refused or keyed.
MODEL = Rules(needs_key=True)  # reads the served model
PREDICT = Rules(needs_key=True, sheddable=True)  # spends the model's time
V2_OPEN = Rules(protocol="v2")
V2_MODEL = Rules(protocol="v2", needs_key=True)
V2_PREDICT = Rules(protocol="v2", needs_key=True, sheddable=True)

_V2_MODEL = "/v2/models/{model_name}"
_V2_VERSION = "/v2/models/{model_name}/versions/{model_version}"

OPERATIONS: tuple[Operation, ...] = (
    # Health, the page, the docs, metrics.
    Operation("GET", "/healthz", OPEN),
    Operation("GET", "/readyz", OPEN),
    Operation("GET", "/", OPEN),
    Operation("GET", "/docs", OPEN),
    Operation("GET", "/openapi.json", OPEN),
    Operation("GET", "/static/{path:path}", OPEN),
    Operation("GET", "/metrics", OPEN),
    # /v1: digits' own API.
    Operation("GET", "/v1/model", MODEL),
    Operation("POST", "/v1/predict", PREDICT, PredictEndpoint),
    Operation("POST", "/v1/predict/upload", PREDICT),
    # /v2: the Open Inference Protocol (KServe V2, Triton).
    Operation("GET", "/v2", V2_MODEL),
    Operation("GET", "/v2/health/live", V2_OPEN),
    Operation("GET", "/v2/health/ready", V2_OPEN),
    Operation("GET", _V2_MODEL, V2_MODEL),
    Operation("GET", _V2_VERSION, V2_MODEL),
    Operation("GET", f"{_V2_MODEL}/ready", V2_MODEL),
    Operation("GET", f"{_V2_VERSION}/ready", V2_MODEL),
    Operation("POST", f"{_V2_MODEL}/infer", V2_PREDICT, InferEndpoint),
    Operation("POST", f"{_V2_VERSION}/infer", V2_PREDICT, InferEndpoint),
    Operation("POST", "/v2/repository/index", V2_MODEL),
    Operation("POST", "/v2/repository/models/{model_name}/load", V2_MODEL),
    Operation("POST", "/v2/repository/models/{model_name}/unload", V2_MODEL),
)

# Requests that match no row (a 404 or 405 to come) under these prefixes.
FALLBACKS: tuple[Fallback, ...] = (
    Fallback("/v1", MODEL),
    Fallback("/v2", V2_MODEL),
    Fallback("/v2/health", V2_OPEN),
)

TABLE = OperationTable(OPERATIONS, FALLBACKS)

# gRPC (`inference.GRPCInferenceService`, `grpc.health.v1.Health`): which methods need the
# key. Like REST's `/v2/health/*`, liveness, readiness and health stay open: probes carry
# no credentials. Every other method, those added later included, needs it.
GRPC_SERVICE = "inference.GRPCInferenceService"
GRPC_HEALTH_SERVICE = "grpc.health.v1.Health"
GRPC_OPEN_METHODS = frozenset(
    {
        f"/{GRPC_SERVICE}/ServerLive",
        f"/{GRPC_SERVICE}/ServerReady",
        f"/{GRPC_HEALTH_SERVICE}/Check",
        f"/{GRPC_HEALTH_SERVICE}/Watch",
    }
)
