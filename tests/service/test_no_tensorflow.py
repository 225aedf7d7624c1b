"""The serving image has no TensorFlow: the service must never import it, even lazily."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import MODEL_CARD, REPO_ROOT

FORBIDDEN = ("tensorflow", "keras", "tf_keras")


def _modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the top-level modules it ended up importing."""
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = code + "\n" + report
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modules: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return modules


def test_importing_the_service_does_not_import_tensorflow() -> None:
    modules = _modules_after("import service.app, service.server.cli, service.runtime.recognizer")
    assert not set(FORBIDDEN) & set(modules)


def test_serving_a_prediction_does_not_import_tensorflow() -> None:
    code = textwrap.dedent(
        f"""
        import base64, io
        import numpy as np
        from PIL import Image
        from fastapi.testclient import TestClient
        from service.app import create_app
        from service.runtime.recognizer import Recognizer
        from service.settings import Settings

        settings = Settings(model_card={str(MODEL_CARD)!r})
        recognizer = Recognizer(settings)
        recognizer.load()
        digit = np.zeros((28, 28), np.uint8)
        digit[6:22, 13:15] = 255
        buffer = io.BytesIO()
        Image.fromarray(digit).save(buffer, format="PNG")
        with TestClient(create_app(settings, recognizer)) as client:
            response = client.post(
                "/v1/predict",
                json={{"images": [{{"data": base64.b64encode(buffer.getvalue()).decode()}}]}},
            )
            assert response.status_code == 200, response.text
            assert client.get("/v1/model").status_code == 200
        """
    )
    modules = _modules_after(code)
    assert "ai_edge_litert" in modules  # the check below means something only if this ran
    assert not set(FORBIDDEN) & set(modules)
