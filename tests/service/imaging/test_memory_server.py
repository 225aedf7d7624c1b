"""Memory of decoding big images, measured on a real server process set up like the
Deployment (deploy/k8s: one worker, two decode threads), as peak RSS (`VmHWM`, reset
through /proc/<pid>/clear_refs) and resident memory after the requests.

The image is the costliest kind: a sparse RGBA drawing as lossless WebP (146 KB) at the
default pixel limit, 4000×4000. Before the fix, one such image at 6300² took a worker
from 83 to 880 MiB (PNG) and two WebPs to 2.2 GiB; 650 MiB could stay resident after.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import yaml
from PIL import Image, ImageDraw

from samples.uploads import encode_png
from service.imaging.decode import DECODE_BYTES_PER_PIXEL
from service.settings import DEFAULT_MAX_PIXELS
from tests.conftest import REPO_ROOT
from tests.hostile_images import png_header
from tests.subprocess_server import memory_kib, reset_peak_memory, server_process

MIB = 1 << 20
SIDE = 4000
# The worker before any image: interpreters, the app, Python (measured ~85-90 MiB).
BASELINE_MIB = 100


def _deployment_environment() -> dict[str, str]:
    """The Deployment's worker and decode-thread counts (whatever they are set to)."""
    documents = yaml.safe_load_all((REPO_ROOT / "deploy/k8s/deployment.yaml").read_text())
    (deployment,) = (doc for doc in documents if doc and doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    environment = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    wanted = ("DIGITS_WORKERS", "DIGITS_DECODE_THREADS", "DIGITS_MAX_PIXELS")
    chosen = {name: environment[name] for name in wanted if name in environment}
    # A loaded CI machine must not turn the slow decode into a 504 before it is measured.
    return chosen | {"DIGITS_REQUEST_TIMEOUT_SECONDS": "120"}


def _sparse_webp(side: int) -> str:
    """White, one black stroke, one transparent corner: tiny to send, big to decode."""
    image = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.line(
        [(side * 0.3, side * 0.2), (side * 0.6, side * 0.8)], fill=(0, 0, 0, 255), width=side // 40
    )
    draw.rectangle((0, 0, side // 10, side // 10), fill=(0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", lossless=True, method=0, quality=0)  # fast to encode
    return base64.b64encode(buffer.getvalue()).decode()


def _memory_mib(pid: int) -> dict[str, float]:
    return {field: memory_kib(pid, field) / 1024 for field in ("VmRSS", "VmHWM")}


def test_big_images_stay_within_the_documented_bound_and_memory_comes_back() -> None:
    environment = _deployment_environment()
    threads = int(environment["DIGITS_DECODE_THREADS"])
    assert environment["DIGITS_WORKERS"] == "1"  # the peak of one process is the pod's
    assert int(environment.get("DIGITS_MAX_PIXELS", DEFAULT_MAX_PIXELS)) >= SIDE * SIDE
    big = _sparse_webp(SIDE)
    small = base64.b64encode(encode_png(np.eye(28, dtype=np.uint8) * 255)).decode()

    with server_process(environment) as server:
        pid = server.process.pid

        def predict(data: str) -> httpx.Response:
            body = {"images": [{"data": data}]}
            return httpx.post(server.url + "/v1/predict", json=body, timeout=180)

        for _ in range(3):  # imports, interpreters and buffers of the small path
            assert predict(small).status_code == 200
        baseline = _memory_mib(pid)["VmRSS"]
        reset_peak_memory(pid)
        with ThreadPoolExecutor(threads) as pool:  # every decode slot busy at once
            responses = list(pool.map(predict, [big] * threads))
        assert [r.status_code for r in responses] == [200] * threads, responses[0].text
        memory = _memory_mib(pid)

        per_image = DECODE_BYTES_PER_PIXEL * SIDE * SIDE / MIB  # ~198 MiB
        growth = memory["VmHWM"] - baseline
        assert growth <= threads * per_image, (growth, memory, baseline)
        assert memory["VmHWM"] <= BASELINE_MIB + threads * per_image, memory  # README's bound
        # Freed image memory goes back to the system (service/imaging/allocator.py).
        assert memory["VmRSS"] - baseline < 16, (memory, baseline)

        # The 6300² image is over the limit: refused from its header, not decoded.
        before = _memory_mib(pid)["VmRSS"]
        reset_peak_memory(pid)
        refused = predict(base64.b64encode(png_header(6300, 6300, colour_type=6)).decode())
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "image_too_large"
        assert _memory_mib(pid)["VmHWM"] - before < 8
