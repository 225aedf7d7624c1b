"""Triton's model repository extension over REST: the index that `tritonclient.http`'s
`get_model_repository_index()` reads, and load/unload refused as not supported."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from service.app import create_app
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.loopback_server import live_server


def test_the_index_lists_the_served_model_and_loading_is_not_supported(
    make_settings: Callable[..., Settings],
    loaded_recognizer: Callable[[str | None], Recognizer],
    model_card: ModelCard,
) -> None:
    app = create_app(make_settings(), loaded_recognizer(None))
    with live_server(app) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        try:
            assert client.get_model_repository_index() == [
                {
                    "name": model_card.name,
                    "version": model_card.version,
                    "state": "READY",
                    "reason": "",
                }
            ]
            for call in (client.load_model, client.unload_model):
                with pytest.raises(InferenceServerException) as raised:
                    call(model_card.name)
                assert raised.value.status() == "400"
                assert "does not support loading or unloading models" in raised.value.message()
        finally:
            client.close()


def test_an_unavailable_model_is_listed_with_the_reason(
    make_settings: Callable[..., Settings], model_card: ModelCard
) -> None:
    settings = make_settings()
    recognizer = Recognizer(settings)  # never loaded: no lifespan runs without `with`
    client = TestClient(create_app(settings, recognizer))
    unavailable = {
        "name": model_card.name,
        "version": model_card.version,
        "state": "UNAVAILABLE",
        "reason": "the model is loading",
    }
    assert client.post("/v2/repository/index").json() == [unavailable]
    assert client.post("/v2/repository/index", json={"ready": True}).json() == []
    recognizer.load()
    recognizer.start_draining()
    draining = {**unavailable, "reason": "the model is draining"}
    assert client.post("/v2/repository/index", json={}).json() == [draining]
    refused = client.post("/v2/repository/index", json={"ready": "maybe"})
    assert refused.status_code == 422 and "ready" in refused.json()["error"]


def test_the_index_needs_the_api_key_when_one_is_set(
    make_settings: Callable[..., Settings], loaded_recognizer: Callable[[str | None], Recognizer]
) -> None:
    client = TestClient(create_app(make_settings(api_key="k"), loaded_recognizer(None)))
    assert client.post("/v2/repository/index").status_code == 401
    assert client.post("/v2/repository/index", headers={"x-api-key": "k"}).status_code == 200
