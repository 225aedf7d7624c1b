"""Schemathesis against the app's own OpenAPI: every operation, generated valid and
invalid requests; no 5xx, every status documented, every response body matching its
schema. Operations added later are covered with no change here."""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.conftest import MODEL_CARD

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,  # a request the schema forbids must get a 4xx
]
EXAMPLES_PER_OPERATION = 40


def _app() -> FastAPI:
    settings = Settings(model_card=MODEL_CARD)
    recognizer = Recognizer(settings)
    recognizer.load()
    return create_app(settings, recognizer)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,  # a shared CPU: slowness is not what is tested here
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
