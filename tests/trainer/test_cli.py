"""The command line answers fast and fails clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli import build_parser, main, options_from_args

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_preset_and_overrides() -> None:
    options = options_from_args(build_parser().parse_args(["--quick", "--train-limit", "500"]))
    assert options.epochs == 2 and options.train_limit == 500 and not options.augment
    assert options.negatives == 600 and options.teachers == 0
    assert (
        options_from_args(build_parser().parse_args(["--quick", "--negatives", "50"])).negatives
        == 50
    )
    defaults = options_from_args(build_parser().parse_args([]))
    assert defaults.epochs >= 20 and defaults.augment and defaults.architecture == "digits_cnn"
    # Calibration is temperature scaling; label smoothing would cap the confidence.
    assert defaults.label_smoothing == 0.0


def test_seed_architecture_is_available() -> None:
    assert (
        options_from_args(build_parser().parse_args(["--architecture", "seed_cnn"])).architecture
        == "seed_cnn"
    )


def test_bad_data_path_exits_nonzero_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--quiet"])
    assert status == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.json").exists()


def test_module_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--data" in result.stdout and "--quick" in result.stdout
