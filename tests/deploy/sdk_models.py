"""Strict validation of a manifest against the OpenAPI model classes of a Kubernetes SDK.

The `kserve` Python SDK's classes (`kserve.models.V1beta1InferenceService`, ...) are
generated from KServe's CRD schemas, and they refer to the Kubernetes client's own classes
(`kubernetes.client.V1Container`, ...) for the pod fields. Walking a document through them
checks what `kubectl apply --dry-run=server` would on a cluster with KServe installed, offline:
every key must be a field of its class (a typo is an error, not silently dropped), every
value of the field's type, and each class's constructor runs its own checks (required
fields, enumerations).

The walk runs in a child process (`problems`): importing `kserve` loads its own copy of the
Open Inference Protocol's protobuf messages (package `inference`), which clashes with
tritonclient's copy in the test process ("duplicate symbol 'inference.ServerLiveRequest'").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

_PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "object": object,  # IntOrString, Quantity and free-form fields
}
# Both generators' spellings: kserve's `list[X]`, `dict(str, X)`;
# kubernetes' `List[X]`, `Dict[str, X]`.
_LIST = re.compile(r"[Ll]ist\[(.+)\]")
_DICT = re.compile(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]")


def problems(documents: list[Any], klass: str) -> list[str | None]:
    """For each document, why it is not a valid `klass`, or None; one child process for all."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.deploy.sdk_models", klass],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[str | None] = json.loads(child.stdout)
    return found


def validate(data: Any, klass: str, path: str = "$") -> None:
    """Raise `AssertionError` naming `path` where `data` does not fit `klass`."""
    if match := _LIST.fullmatch(klass):
        assert isinstance(data, list), f"{path}: expected a list, got {data!r}"
        for position, item in enumerate(data):
            validate(item, match.group(1), f"{path}[{position}]")
        return
    if match := _DICT.fullmatch(klass):
        assert isinstance(data, dict), f"{path}: expected a mapping, got {data!r}"
        for key, value in data.items():
            validate(value, match.group(2) or match.group(4), f"{path}.{key}")
        return
    if klass in _PRIMITIVES:
        assert isinstance(data, _PRIMITIVES[klass]), f"{path}: expected {klass}, got {data!r}"
        assert not (klass == "int" and isinstance(data, bool)), f"{path}: expected int, got bool"
        return
    import kserve.models
    import kubernetes.client.models

    model = getattr(kserve.models, klass, None) or getattr(kubernetes.client.models, klass)
    assert isinstance(data, dict), f"{path}: expected a {klass} mapping, got {data!r}"
    attribute_of = {key: attribute for attribute, key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(attribute_of))
    assert not unknown, f"{path}: {klass} has no field(s) {unknown}"
    for key, value in data.items():
        validate(value, model.openapi_types[attribute_of[key]], f"{path}.{key}")
    try:
        model(**{attribute_of[key]: value for key, value in data.items()})
    except ValueError as error:
        raise AssertionError(f"{path}: {klass}: {error}") from None


def _main() -> None:
    found: list[str | None] = []
    for document in json.load(sys.stdin):
        try:
            validate(document, sys.argv[1])
        except AssertionError as error:
            found.append(str(error))
        else:
            found.append(None)
    print(json.dumps(found))


if __name__ == "__main__":
    _main()
