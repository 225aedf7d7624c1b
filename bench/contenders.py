"""Who `make bench` measures over HTTP, how each is started, and what it is sent.

- `digits`: this service as shipped (`python -m service`, default settings);
- `digits-unbatched`: the same with micro-batching off (`DIGITS_BATCHING=false`);
- `reference`: a bare FastAPI app with `/v1/predict`'s schemas and no image work
  (bench/reference_app.py), the yardstick of issue 14's targets;
- peers, the same .tflite and preprocessing in another serving framework, each in its
  own venv (bench/peer.py): `seed` (the seed's way: Keras .h5, FastAPI), `bentoml`,
  `mlserver` (Open Inference Protocol, custom runtime), `litserve` (a `LitAPI`).

Every multi-process contender runs as many workers as the service does by default
(`worker_count`, one per core), and each is sent the same images by the same client.
"""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import peer
from bench.images import digits_body, peer_body, v2_body
from bench.servers import HOST, REPO_ROOT, Server, free_port, running
from service.server.workers import worker_count
from service.settings import Settings

BATCH_SIZES = (1, 16, 64, 256)
PORT = "{port}"  # replaced, in a command or an env value, by the port the server gets


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]
    path: str  # the prediction route
    body: Callable[[list[bytes]], bytes]
    ready_path: str = "/readyz"
    batch_sizes: tuple[int, ...] = BATCH_SIZES  # () for no batch scoring


def build(
    model_path: Path, *, seed: bool, peers: bool
) -> tuple[list[Contender], dict[str, dict[str, object]]]:
    """The contenders of this run, and for each peer its version and venv creation time."""
    python = str(REPO_ROOT / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    # The service as shipped: its default settings (the access log is off by default).
    digits_env = {"DIGITS_HOST": HOST, "DIGITS_PORT": PORT}
    found = [
        Contender("digits", [python, "-m", "service"], digits_env, "/v1/predict", digits_body),
        Contender(
            "digits-unbatched",
            [python, "-m", "service"],
            {**digits_env, "DIGITS_BATCHING": "false"},
            "/v1/predict",
            digits_body,
            batch_sizes=(),  # batching only concerns single-image requests
        ),
        Contender(
            "reference",
            [python, "-m", "bench.reference_app", PORT],
            {},
            "/v1/predict",
            digits_body,
            batch_sizes=(),  # no image work: a batch would measure nothing of interest
        ),
    ]
    if seed:
        seed_command = [python, "-m", "bench.seed_server", PORT]
        found.append(Contender("seed", seed_command, {}, "/v1/predict", digits_body))
    versions: dict[str, dict[str, object]] = {}
    if peers:
        for each in peer.PEERS:
            seconds = peer.ensure_venv(each)
            versions[each.name] = {"version": peer.version(each), "venv_created_seconds": seconds}
        found += _peers(model_path.resolve())
    return found, versions


def _peers(model: Path) -> list[Contender]:
    workers = str(worker_count(Settings().workers))
    common = {"BENCH_MODEL": str(model), "BENCH_WORKERS": workers, "PYTHONPATH": str(REPO_ROOT)}
    # MLServer finds models under a folder, else from MLSERVER_MODEL_* (our case): an
    # empty folder keeps it from searching the repository for model-settings.json.
    empty = peer.MLSERVER.venv / "models"
    empty.mkdir(exist_ok=True)
    mlserver_env = {
        **common,
        "MLSERVER_HOST": HOST,
        "MLSERVER_HTTP_PORT": PORT,
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_PARALLEL_WORKERS": workers,
        "MLSERVER_DEBUG": "false",  # its default logs every request (digits: not by default)
        "MLSERVER_MODEL_NAME": "digits",
        "MLSERVER_MODEL_IMPLEMENTATION": "bench.mlserver_runtime.DigitsRuntime",
        "MLSERVER_MODEL_URI": str(model),
    }
    return [
        Contender(
            "bentoml",
            [
                str(peer.BENTOML.executable("bentoml")),
                "serve",
                "bench.bentoml_service:Digits",
                "--host",
                HOST,
                "--port",
                PORT,
            ],
            common,
            "/predict",
            peer_body,
        ),
        Contender(
            "mlserver",
            [str(peer.MLSERVER.executable("mlserver")), "start", str(empty)],
            mlserver_env,
            "/v2/models/digits/infer",
            v2_body,
            ready_path="/v2/models/digits/ready",
        ),
        Contender(
            "litserve",
            [str(peer.LITSERVE.python), "-m", "bench.litserve_app", PORT],
            common,
            "/predict",
            peer_body,
            ready_path="/health",
        ),
    ]


@contextlib.contextmanager
def started(contender: Contender) -> Iterator[Server]:
    """The contender running on a free port, ready on every worker, idle RSS noted."""
    port = free_port()
    command = [part.replace(PORT, str(port)) for part in contender.command]
    env = {key: value.replace(PORT, str(port)) for key, value in contender.env.items()}
    with running(
        contender.name, command, port, ready_path=contender.ready_path, env=env, timeout=180
    ) as server:
        _wait_all_workers(server, contender.ready_path)
        server.notes["rss_idle_mb"] = server.rss_mb()
        server.notes["rss_idle_largest_mb"] = server.largest_process_mb()
        server.notes["processes"] = server.processes()
        yield server


def _wait_all_workers(server: Server, path: str) -> None:
    # With several worker processes the first 200 may come from one of them: ready
    # means every fresh connection gets a 200 (checked 20 times, bounded).
    for _ in range(200):
        try:
            statuses = []
            for _ in range(20):
                with urllib.request.urlopen(f"http://{HOST}:{server.port}{path}", timeout=2) as r:
                    statuses.append(r.status)
            if all(status == 200 for status in statuses):
                return
        except OSError:
            pass
        time.sleep(0.01)
