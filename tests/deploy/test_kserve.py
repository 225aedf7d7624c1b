"""deploy/kserve: the InferenceService valid against the KServe SDK's model classes (strict:
no unknown fields), and the same pod as deploy/k8s/deployment.yaml."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.sdk_models import problems

MANIFEST = REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
DEPLOYMENT = REPO_ROOT / "deploy" / "k8s" / "deployment.yaml"
DOCUMENTS = {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def _inference_service() -> dict[str, Any]:
    return copy.deepcopy(DOCUMENTS["InferenceService"])


def _predictor_container(isvc: dict[str, Any]) -> dict[str, Any]:
    containers = isvc["spec"]["predictor"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _deployment_pod() -> dict[str, Any]:
    pod: dict[str, Any] = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    return pod


def _environment(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_manifest_holds_an_inference_service_and_its_grpc_service() -> None:
    assert sorted(DOCUMENTS) == ["InferenceService", "Service"]


MISTAKES: list[tuple[Callable[[dict[str, Any]], object], str]] = [
    (lambda c: c.update(imagePullpolicy="Always"), "has no field(s) ['imagePullpolicy']"),
    (lambda c: c["ports"][0].pop("containerPort"), "containerPort"),
    (lambda c: c["resources"].update(limits=["2"]), "expected a mapping"),
]


def test_the_inference_service_is_valid_for_the_kserve_sdk_and_mistakes_are_caught() -> None:
    broken = []
    for break_it, _ in MISTAKES:
        isvc = _inference_service()
        break_it(_predictor_container(isvc))
        broken.append(isvc)
    found = problems([_inference_service(), *broken], "V1beta1InferenceService")
    assert found[0] is None, found[0]
    for (_, complaint), problem in zip(MISTAKES, found[1:], strict=True):
        assert problem is not None and complaint in problem, (complaint, problem)


@pytest.mark.parametrize("version", ["1.30.0", "1.33.0"])
def test_the_grpc_service_is_valid_kubernetes(version: str) -> None:
    kubernetes_validate.validate(DOCUMENTS["Service"], version, strict=True)


def test_the_pod_is_the_deployments_pod() -> None:
    isvc = _inference_service()
    predictor = isvc["spec"]["predictor"]
    container = _predictor_container(isvc)
    pod = _deployment_pod()
    reference = pod["containers"][0]
    for field in ("image", "resources", "securityContext", "volumeMounts"):
        assert container[field] == reference[field], field
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe] == reference[probe], probe
    for field in ("securityContext", "terminationGracePeriodSeconds", "volumes"):
        assert predictor[field] == pod[field], field
    assert predictor["automountServiceAccountToken"] is False
    environment = _environment(container)
    assert environment.pop("DIGITS_GRPC_PORT") == "8081"
    assert environment == _environment(reference)


def test_the_ports_are_the_ones_the_server_listens_on() -> None:
    container = _predictor_container(_inference_service())
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    environment = {k.removeprefix("DIGITS_").lower(): v for k, v in _environment(container).items()}
    settings = Settings.model_validate(environment)
    # REST first: in RawDeployment KServe's own Service routes to the first port.
    assert list(ports) == ["http", "h2c"]
    assert ports == {"http": settings.port, "h2c": settings.grpc_port}
    grpc = DOCUMENTS["Service"]
    assert grpc["spec"]["selector"] == {"serving.kserve.io/inferenceservice": "digits"}
    assert DOCUMENTS["InferenceService"]["metadata"]["name"] == "digits"
    assert [p["targetPort"] for p in grpc["spec"]["ports"]] == ["h2c"]
