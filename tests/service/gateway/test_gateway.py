"""The gateway: one table of operations, matched once, whose rules every layer reads, and
through which every request of every operation passes, added middlewares and an
operation's dependencies included."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import DigitsApp
from service.gateway.assembly import TableMismatchError
from service.gateway.matcher import OperationTable
from service.gateway.table import FALLBACKS, OPERATIONS, TABLE
from service.model_card import ModelCard
from service.web.errors import HttpError
from service.web.operation import Operation, operation_of, rules_of
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


def _requests(card: ModelCard, digits: Digits) -> list[tuple[str, str, dict]]:
    """A valid request of several operations: two with their own endpoint, the rest
    answered by FastAPI; (method, path, keyword arguments for the test client)."""
    image = png_base64(digits[0][0])
    tensor = {"name": "images", "datatype": "BYTES", "shape": [1], "data": [image]}
    return [
        ("POST", "/v1/predict", {"json": {"images": [{"data": image}]}}),
        ("POST", f"/v2/models/{card.name}/infer", {"json": {"inputs": [tensor]}}),
        ("GET", "/v1/model", {}),
        ("GET", "/healthz", {}),
        ("GET", f"/v2/models/{card.name}", {}),
    ]


class Seen:
    """A middleware added the documented way: it notes each request's operation."""

    names: ClassVar[list[str | None]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # not the lifespan
            operation = operation_of(scope)
            Seen.names.append(operation.name if operation is not None else None)
        await self.app(scope, receive, send)


def test_an_added_middleware_sees_every_request_of_every_operation(
    make_app: Callable[..., FastAPI], model_card: ModelCard, clear_digits: Digits
) -> None:
    app = make_app()
    app.add_middleware(Seen)
    Seen.names = []
    requests = _requests(model_card, clear_digits)
    with TestClient(app) as client:
        for method, path, options in requests:
            assert client.request(method, path, **options).status_code == 200, path
        # Refused ones too: an invalid prediction, and a route that does not exist.
        assert client.post("/v1/predict", json={"images": []}).status_code == 422
        assert client.get("/v1/nothing").status_code == 404
    paths = {"/v2/models/mnist-digits-cnn/infer": "/v2/models/{model_name}/infer"}
    paths[f"/v2/models/{model_card.name}"] = "/v2/models/{model_name}"
    expected = [f"{method} {paths.get(path, path)}" for method, path, _ in requests]
    assert Seen.names == [*expected, "POST /v1/predict", None]


def test_a_middleware_decorated_on_the_app_applies_too(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    app = make_app()

    @app.middleware("http")
    async def stamp(request: Request, call_next: Callable) -> object:
        response = await call_next(request)
        response.headers["x-stamped"] = "yes"
        return response

    image = png_base64(clear_digits[0][0])
    with TestClient(app) as client:
        response = client.post("/v1/predict", json={"images": [{"data": image}]})
    assert response.status_code == 200 and response.headers["x-stamped"] == "yes"


class ForbiddenError(HttpError):
    status_code = 403
    code = "forbidden"


async def tenant_required(request: Request) -> None:
    if request.headers.get("x-tenant") != "acme":
        raise ForbiddenError("send X-Tenant")


def test_a_dependency_on_an_operation_applies_to_every_request_of_it(
    make_app: Callable[..., FastAPI], model_card: ModelCard, clear_digits: Digits
) -> None:
    requests = _requests(model_card, clear_digits)
    guarded = {TABLE.match(method, path)[0] for method, path, _ in requests}
    operations = [
        dataclasses.replace(op, dependencies=(tenant_required,)) if op in guarded else op
        for op in OPERATIONS
    ]
    app = make_app()
    assert isinstance(app, DigitsApp)
    app.table = OperationTable(operations, FALLBACKS)
    with TestClient(app) as client:
        for method, path, options in requests:
            refused = client.request(method, path, **options)
            assert refused.status_code == 403, path
            body = refused.json()["error"]
            # In the operation's own error shape.
            assert (body if path.startswith("/v2") else body["message"]) == "send X-Tenant"
            headers = {"x-tenant": "acme"}
            assert client.request(method, path, headers=headers, **options).status_code == 200
        assert client.get("/readyz").status_code == 200  # not guarded


def test_every_route_has_a_row_and_a_route_without_one_stops_the_app(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app()
    with TestClient(app) as client:  # the real table and routes agree: it starts
        assert client.get("/healthz").status_code == 200
    app = make_app()

    @app.get("/v1/extra")
    async def extra() -> dict[str, str]:
        return {}

    with pytest.raises(TableMismatchError, match=r"route GET /v1/extra has no row"):
        TestClient(app).get("/healthz")


@pytest.mark.parametrize(
    ("method", "path", "name", "protocol", "needs_key", "sheddable"),
    [
        ("POST", "/v1/predict", "POST /v1/predict", "v1", True, True),
        ("GET", "/v1/predict", None, "v1", True, True),  # a 405, in the path's shape
        ("POST", "/v2/models/m/versions/2/infer", None, "v2", True, True),
        ("GET", "/v2/health/ready", "GET /v2/health/ready", "v2", False, False),
        ("GET", "/v2/health/other", None, "v2", False, False),  # fallback
        ("GET", "/v2/unknown", None, "v2", True, False),
        ("GET", "/v1", None, "v1", True, False),
        ("GET", "/v10/x", None, "v1", False, False),
        ("GET", "/static/app.js", "GET /static/{path:path}", "v1", False, False),
    ],
)
def test_the_table_matches_each_request_once(
    method: str,
    path: str,
    name: str | None,
    protocol: str,
    needs_key: bool,
    sheddable: bool,
) -> None:
    operation, rules, _ = TABLE.match(method, path)
    if method == "POST" and "versions" in path:
        assert operation is not None and operation.path.endswith("/versions/{model_version}/infer")
    else:
        assert (operation.name if operation else None) == name
    assert (rules.protocol, rules.needs_key, rules.sheddable) == (protocol, needs_key, sheddable)


def test_path_parameters_reach_the_endpoint() -> None:
    _, _, params = TABLE.match("POST", "/v2/models/m/versions/2/infer")
    assert params == {"model_name": "m", "model_version": "2"}


def test_an_operation_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        OperationTable([*OPERATIONS, OPERATIONS[0]], FALLBACKS)


def test_the_rules_are_in_the_scope_for_every_layer(make_app: Callable[..., FastAPI]) -> None:
    seen: list[tuple[Operation | None, str]] = []

    class Peek:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append((operation_of(scope), rules_of(scope).protocol))
            await self.app(scope, receive, send)

    app = make_app()
    app.add_middleware(Peek)
    with TestClient(app) as client:
        answer = client.get("/v2/no-such-thing")
    assert answer.status_code == 404 and "no such endpoint" in json.loads(answer.text)["error"]
    assert seen == [(None, "v2")]


def test_an_operation_may_have_a_body_limit_of_its_own(make_app: Callable[..., FastAPI]) -> None:
    predict = TABLE.match("POST", "/v1/predict")[0]
    assert predict is not None
    small = dataclasses.replace(predict.rules, max_body_bytes=2048)
    operations = [
        dataclasses.replace(op, rules=small) if op is predict else op for op in OPERATIONS
    ]
    app = make_app()
    assert isinstance(app, DigitsApp)
    app.table = OperationTable(operations, FALLBACKS)
    body = b'{"images": [{"data": "' + b"A" * 3000 + b'"}]}'
    headers = {"content-type": "application/json"}
    with TestClient(app) as client:
        refused = client.post("/v1/predict", content=body, headers=headers)
        assert refused.status_code == 413
        assert "limit of 2048 bytes" in refused.json()["error"]["message"]
        # Another operation keeps DIGITS_MAX_BODY_BYTES: the same body is read and answered.
        other = client.post("/v2/repository/index", content=body, headers=headers)
        assert other.status_code == 200
