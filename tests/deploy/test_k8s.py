"""deploy/k8s: every manifest valid against the Kubernetes schemas (strict: no unknown
fields), and consistent with the image and the service it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from service.imaging.decode import DECODE_BYTES_PER_PIXEL
from service.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.dockerfile_replay import parse

K8S = REPO_ROOT / "deploy" / "k8s"
# The oldest Kubernetes still commonly run, and a recent one: schemas for both ship
# with kubernetes-validate, so this runs offline.
K8S_VERSIONS = ("1.30.0", "1.33.0")
MANIFESTS = sorted(K8S.rglob("*.yaml"))


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((f"{path.relative_to(K8S)}:{document['kind']}", document))
    return found


DOCUMENTS = dict(_documents())


def _one(kind: str) -> dict[str, Any]:
    matches = [doc for doc in DOCUMENTS.values() if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def test_the_expected_objects_are_there() -> None:
    kinds = sorted(doc["kind"] for doc in DOCUMENTS.values())
    expected = [
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
    ]
    assert kinds == expected


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_manifest_is_valid(name: str, version: str) -> None:
    kubernetes_validate.validate(DOCUMENTS[name], version, strict=True)


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _environment(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _image_user() -> int:
    _, stages = parse(REPO_ROOT / "Dockerfile")
    return int(stages[-1].all("USER")[-1].split(":")[0])


def test_deployment_runs_the_image_safely() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_user()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # A writable /tmp for the workers' metrics files, since the root filesystem is read-only.
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_deployment_settings_are_real_and_fit_the_grace_period() -> None:
    deployment = _one("Deployment")
    environment = _environment(_container(deployment))
    assert all(name.startswith("DIGITS_") for name in environment)
    fields = {name.removeprefix("DIGITS_").lower(): value for name, value in environment.items()}
    assert set(fields) <= set(Settings.model_fields), "a DIGITS_ variable that is no setting"
    settings = Settings(**fields)  # type: ignore[arg-type]  # validated as the environment would be
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settings.drain_seconds + settings.shutdown_timeout_seconds + 3 <= grace
    # Requests still running when the drain ends get their full timeout before the kill.
    assert settings.request_timeout_seconds <= settings.shutdown_timeout_seconds
    limits = _container(deployment)["resources"]["limits"]
    assert 1 <= settings.workers <= float(limits["cpu"]), "0 would count the node's cores"
    # Worst case: every decode slot decoding a max-size image (the bound per pixel that
    # tests/service/imaging/test_memory_server.py checks) on top of a ~90 MiB worker; over
    # the limit means an OOM kill, so a quarter of it is kept as margin.
    assert limits["memory"].endswith("Mi")
    per_image_mib = settings.max_pixels * DECODE_BYTES_PER_PIXEL / 2**20
    worst_mib = 100 + settings.decode_threads * per_image_mib
    assert settings.workers * worst_mib <= 0.75 * int(limits["memory"].removesuffix("Mi"))


def test_probes_ports_and_selectors_agree(client: TestClient) -> None:
    deployment, service = _one("Deployment"), _one("Service")
    container = _container(deployment)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    _, stages = parse(REPO_ROOT / "Dockerfile")
    (port,) = container["ports"]
    assert str(port["containerPort"]) in stages[-1].all("EXPOSE")
    assert port["containerPort"] == Settings().port
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]

    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["port"] == port["name"]
        assert client.get(probe["path"]).status_code == 200  # on a ready server


def test_autoscaling_and_disruption_budget_target_the_deployment() -> None:
    deployment, hpa, pdb = (
        _one("Deployment"),
        _one("HorizontalPodAutoscaler"),
        _one("PodDisruptionBudget"),
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # A budget that leaves no pod evictable would block every node drain.
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_trainer_job_writes_to_the_models_volume() -> None:
    job, claim = _one("Job"), _one("PersistentVolumeClaim")
    pod = job["spec"]["template"]["spec"]
    container = _container(job)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsUser"] == _image_user()
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claimed = [n for n, v in volumes.items() if "persistentVolumeClaim" in v]
    assert [volumes[n]["persistentVolumeClaim"]["claimName"] for n in claimed] == [
        claim["metadata"]["name"]
    ]
    out = container["args"][container["args"].index("--out") + 1]
    assert out.startswith(mounts[claimed[0]] + "/")
    assert container["image"].split(":")[0].endswith("digits-trainer")
    _, stages = parse(REPO_ROOT / "Dockerfile")
    trainer = next(stage for stage in stages if stage.name == "trainer")
    assert json.loads(trainer.all("ENTRYPOINT")[0]) == ["python", "-m", "trainer"]


def test_manifests_are_plain_yaml_files() -> None:
    # `kubectl apply -f deploy/k8s/` applies the service's objects (not the trainer's).
    top = {path.name for path in K8S.glob("*.yaml")}
    assert top == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    assert Path(K8S / "trainer" / "job.yaml").is_file()
