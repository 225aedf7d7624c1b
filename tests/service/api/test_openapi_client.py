"""A Python client generated from openapi.json by openapi-python-client, against a real server."""

from __future__ import annotations

import base64
import importlib
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from samples.uploads import encode_png
from service.model_card import ModelCard
from tests.conftest import REPO_ROOT

Digits = tuple[np.ndarray, np.ndarray]
PACKAGE = "digits_api_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], ModuleType]]:
    """The committed openapi.json turned into an importable package, as a user would."""
    folder = tmp_path_factory.mktemp("client")
    config = folder / "config.json"
    # No formatting hooks: they would need ruff on PATH and change nothing that runs.
    config.write_text(json.dumps({"post_hooks": []}))
    command = [
        str(Path(sys.executable).with_name("openapi-python-client")),
        "generate",
        *("--path", str(REPO_ROOT / "openapi.json")),
        *("--output-path", str(folder / PACKAGE)),
        *("--meta", "none", "--config", str(config), "--fail-on-warning"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_generated_client_calls_the_service(
    generated: Callable[[str], ModuleType],
    base_url: str,
    clear_digits: Digits,
    model_card: ModelCard,
) -> None:
    client_module = generated("client")
    models = generated("models")
    readyz = generated("api.health.readyz")
    predict = generated("api.model.predict")
    images, labels = clear_digits
    client = client_module.Client(base_url=base_url)

    ready = readyz.sync(client=client)
    assert ready.status.value == "ready" and ready.model.name == model_card.name

    request = models.PredictRequest(
        images=[
            models.ImageInput(data=base64.b64encode(encode_png(image)).decode(), id=f"n{i}")
            for i, image in enumerate(images[:5])
        ],
        top_k=2,
    )
    response = predict.sync(client=client, body=request)
    assert isinstance(response, models.PredictResponse)
    assert [p.digit for p in response.predictions] == labels[:5].tolist()
    assert [p.id for p in response.predictions] == [f"n{i}" for i in range(5)]
    assert all(len(p.top_k) == 2 for p in response.predictions)

    # Errors come back typed too, with the offending image's index.
    bad = models.PredictRequest(images=[request.images[0], models.ImageInput(data="eA==")])
    error = predict.sync_detailed(client=client, body=bad)
    assert error.status_code == 422
    assert isinstance(error.parsed, models.ErrorResponse) and error.parsed.error.index == 1


def test_generated_client_uploads_files_and_speaks_v2(
    generated: Callable[[str], ModuleType],
    base_url: str,
    clear_digits: Digits,
    model_card: ModelCard,
) -> None:
    models = generated("models")
    types = generated("types")
    upload = generated("api.model.predict_upload")
    infer = generated("api.open_inference_protocol_v2.infer")
    images, labels = clear_digits
    client = generated("client").Client(base_url=base_url)

    files = [
        types.File(
            payload=io.BytesIO(encode_png(image)), file_name=f"{i}.png", mime_type="image/png"
        )
        for i, image in enumerate(images[:3])
    ]
    uploaded = upload.sync(client=client, body=models.UploadForm(file=files, top_k=1))
    assert [(p.id, p.digit) for p in uploaded.predictions] == [
        (f"{i}.png", int(label)) for i, label in enumerate(labels[:3])
    ]

    tensor = models.RequestInput(
        name="images", datatype="UINT8", shape=[3, 784], data=images[:3].reshape(3, -1).tolist()
    )
    result = infer.sync(
        client=client, model_name=model_card.name, body=models.InferRequest(inputs=[tensor])
    )
    assert isinstance(result, models.InferResponse)
    digit = next(output for output in result.outputs if output.name == "digit")
    assert digit.data == labels[:3].tolist()
