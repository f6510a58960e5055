"""The test command runs the same gates as ``.ci/gates``: ruff, mypy strict, import-linter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(BIN / "ruff"), "check", "."], id="ruff"),
        pytest.param([str(BIN / "mypy")], id="mypy-strict"),
        pytest.param([str(BIN / "lint-imports")], id="import-linter-rings"),
    ],
)
def test_gate_passes(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
