"""Each peer framework's own venv (bench/.venv-<name>), created once and reused.

A serving framework pins its own dependency set (BentoML, MLServer and LitServe would
each bring a different FastAPI/Starlette/uvicorn into the project's venv), so each gets
a venv of its own, installed from PyPI with pip. A stamp file records what was
installed; a later run reuses the venv as it is, and a changed requirement list
rebuilds it. The peers import `service.imaging.preprocess` from this checkout
(PYTHONPATH), which needs numpy, Pillow and pydantic-settings: every peer installs them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# What `service.imaging` and the LiteRT interpreter need, the same in every peer's venv.
COMMON = ("ai-edge-litert>=1.2,<3", "pillow>=10.3", "numpy>=1.26", "pydantic-settings>=2.3,<3")


@dataclass(frozen=True)
class Peer:
    """A serving framework benchmarked beside digits, in its own venv."""

    name: str  # also the venv's suffix: bench/.venv-<name>
    requirements: tuple[str, ...]  # pip requirement specifiers, the framework first
    module: str  # imported to read the installed version (`module.__version__`)

    @property
    def venv(self) -> Path:
        return BENCH_DIR / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def executable(self, name: str) -> Path:
        """A console script installed in the peer's venv (e.g. `bentoml`, `mlserver`)."""
        return self.venv / "bin" / name


BENTOML = Peer("bentoml", ("bentoml>=1.4,<1.5", *COMMON), "bentoml")
# uvloop 0.22 broke MLServer 1.7's inference workers (asyncio.get_event_loop() in a fresh
# process raises; SeldonIO/MLServer#2286, open, fixed by the unmerged PR #2285).
MLSERVER = Peer("mlserver", ("mlserver>=1.7,<1.8", "uvloop<0.22", *COMMON), "mlserver")
LITSERVE = Peer("litserve", ("litserve>=0.2.19,<0.3", *COMMON), "litserve")
PEERS = (BENTOML, MLSERVER, LITSERVE)


def ensure_venv(peer: Peer, timeout: float = 600.0) -> float:
    """Create the peer's venv unless its stamp matches; the seconds spent (0.0 if cached)."""
    stamp = peer.venv / ".installed"
    wanted = "\n".join(peer.requirements)
    if stamp.is_file() and stamp.read_text() == wanted and peer.python.is_file():
        return 0.0
    began = time.perf_counter()
    print(f"creating {peer.venv} (first run only): pip install {' '.join(peer.requirements)}")
    sys.stdout.flush()
    create = [sys.executable, "-m", "venv", "--clear", str(peer.venv)]
    subprocess.run(create, check=True, timeout=120)
    pip = [str(peer.python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *peer.requirements], check=True, timeout=timeout)
    stamp.write_text(wanted)
    return round(time.perf_counter() - began, 1)


def version(peer: Peer) -> str:
    """The framework's installed version, as it reports it."""
    result = subprocess.run(
        [str(peer.python), "-c", f"import {peer.module}; print({peer.module}.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":  # `python -m bench.peer`: create (or check) every peer's venv
    for each in PEERS:
        seconds = ensure_venv(each)
        print(f"{each.name} {version(each)}: venv created in {seconds} s (0.0 = cached)")
