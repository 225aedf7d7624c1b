"""GET /metrics: Prometheus text format, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.types import Message, Receive, Scope, Send

from samples.uploads import encode_png
from service.middleware.metrics import MetricsMiddleware
from service.model_card import ModelCard

Digits = tuple[np.ndarray, np.ndarray]


def _scrape(client: TestClient) -> dict[str, list[Sample]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching)


def test_requests_counted_by_route_template_and_status(
    client: TestClient, clear_digits: Digits, model_card: ModelCard
) -> None:
    images, _ = clear_digits
    request = {"images": [{"data": base64.b64encode(encode_png(i)).decode()} for i in images[:3]]}
    for _ in range(2):
        assert client.post("/v1/predict", json=request).status_code == 200
    assert client.post("/v1/predict", json={"images": [{"data": "eA=="}]}).status_code == 422
    for name in (model_card.name, "nope-1", "nope-2"):
        client.get(f"/v2/models/{name}")
    for path in ("/wp-admin", "/v2/../etc/passwd", "/random/1", "/random/2"):
        assert client.get(path).status_code == 404

    metrics = _scrape(client)

    requests = metrics["digits_http_requests"]
    predict = {"method": "POST", "route": "/v1/predict"}
    assert _value(requests, "digits_http_requests_total", **predict, status="200") == 2
    assert _value(requests, "digits_http_requests_total", **predict, status="422") == 1
    v2 = {"method": "GET", "route": "/v2/models/{model_name}"}
    assert _value(requests, "digits_http_requests_total", **v2, status="200") == 1
    assert _value(requests, "digits_http_requests_total", **v2, status="404") == 2
    # Unknown URLs share one series: clients cannot make the label set grow.
    routes = {s.labels["route"] for s in requests}
    assert routes == {"/v1/predict", "/v2/models/{model_name}", "unmatched"}
    assert _value(requests, "digits_http_requests_total", route="unmatched", status="404") == 4

    latency = metrics["digits_http_request_duration_seconds"]
    ok = {**predict, "status": "200"}
    assert _value(latency, "digits_http_request_duration_seconds_count", **ok) == 2
    assert _value(latency, "digits_http_request_duration_seconds_sum", **ok) > 0
    assert _value(latency, "digits_http_request_duration_seconds_bucket", **ok, le="+Inf") == 2


def test_images_inference_and_queue_histograms(
    client: TestClient, clear_digits: Digits, model_card: ModelCard
) -> None:
    images, _ = clear_digits
    files = [base64.b64encode(encode_png(i)).decode() for i in images[:5]]
    client.post("/v1/predict", json={"images": [{"data": f} for f in files]})
    client.post("/v1/predict", json={"images": [{"data": files[0]}]})
    tensor = {"name": "x", "datatype": "UINT8", "shape": [4, 784], "data": [0] * 4 * 784}
    client.post("/v2/models/any/infer", json={"inputs": [tensor]})  # 404: not counted
    v2 = client.post(f"/v2/models/{model_card.name}/infer", json={"inputs": [tensor]})
    assert v2.status_code == 200

    metrics = _scrape(client)

    images_per_request = metrics["digits_images_per_request"]
    assert _value(images_per_request, "digits_images_per_request_count") == 3
    assert _value(images_per_request, "digits_images_per_request_sum") == 5 + 1 + 4
    assert _value(images_per_request, "digits_images_per_request_bucket", le="1.0") == 1
    inference = metrics["digits_inference_seconds"]
    assert _value(inference, "digits_inference_seconds_count") >= 3
    assert _value(inference, "digits_inference_seconds_sum") > 0
    assert "digits_queue_wait_seconds" in metrics  # observed by the micro-batcher


def test_model_info(client: TestClient, model_card: ModelCard) -> None:
    metrics = _scrape(client)
    (info,) = metrics["digits_model_info"]  # an Info: a gauge of 1 in text format
    served = model_card.artifacts[model_card.serving_default]
    assert info.labels == {
        "name": model_card.name,
        "version": model_card.version,
        "file": served.file,
        "sha256": served.sha256,
    }
    assert info.value == 1
    assert metrics["digits_model_ready"][0].value == 1
    assert metrics["digits_worker_processes"][0].value == 1  # in-process: one app, one worker


def test_refused_requests_are_counted(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(max_body_bytes=2048)) as client:
        client.post(
            "/v1/predict", content=b"x" * 4096, headers={"content-type": "application/json"}
        )
        requests = _scrape(client)["digits_http_requests"]
    assert _value(requests, "digits_http_requests_total", status="413") == 1


def test_each_app_has_its_own_registry(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as first, TestClient(make_app()) as second:
        for _ in range(3):
            first.get("/healthz")
        second.get("/healthz")
        count = "digits_http_requests_total"
        assert _value(_scrape(first)["digits_http_requests"], count, route="/healthz") == 3
        assert _value(_scrape(second)["digits_http_requests"], count, route="/healthz") == 1


def test_a_request_is_counted_before_its_last_bytes_are_sent(
    make_app: Callable[..., FastAPI],
) -> None:
    # A client holding its whole response that then scrapes (perhaps another worker of the
    # same server) must find its request counted.
    metrics = make_app().state.metrics

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    counted_when_sent = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            families = text_string_to_metric_families(metrics.exposition().decode())
            requests = {f.name: f.samples for f in families}["digits_http_requests"]
            counted_when_sent.append(_value(requests, "digits_http_requests_total", status="200"))

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/stream", "headers": []}
    asyncio.run(MetricsMiddleware(app, metrics)(scope, receive, send))
    assert counted_when_sent == [0, 1]
