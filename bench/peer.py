"""The BentoML peer's own venv (bench/.venv-bentoml), created once and reused.

BentoML pins its own dependency set (and would bring a different FastAPI/Starlette
into the project's venv), so it gets a venv of its own, installed from PyPI with pip.
A stamp file records what was installed; a second run reuses the venv as it is.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-bentoml"
REQUIREMENTS = ("bentoml>=1.4,<1.5", "ai-edge-litert>=1.2,<3", "pillow>=10.3", "numpy>=1.26")
STAMP = VENV / ".installed"


def ensure_venv(timeout: float = 480.0) -> tuple[Path, float]:
    """The venv's bentoml executable, and the seconds spent creating it (0 if cached)."""
    bentoml = VENV / "bin" / "bentoml"
    wanted = "\n".join(REQUIREMENTS)
    if STAMP.is_file() and STAMP.read_text() == wanted and bentoml.is_file():
        return bentoml, 0.0
    began = time.perf_counter()
    print(f"creating {VENV} (first run only): pip install {' '.join(REQUIREMENTS)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *REQUIREMENTS], check=True, timeout=timeout)
    STAMP.write_text(wanted)
    return bentoml, round(time.perf_counter() - began, 1)


def version() -> str:
    python = VENV / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", "import bentoml; print(bentoml.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.strip() or "unknown"
