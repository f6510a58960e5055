"""``aiops config check`` and ``aiops config test-rules`` as the user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AIOPS = str(Path(sys.executable).parent / "aiops")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIOPS, *args], capture_output=True, text=True, timeout=60, check=False)


def test_config_check_of_the_shipped_files_passes() -> None:
    result = run("config", "check")
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout and "rules.yaml" in result.stdout


def test_config_check_exits_non_zero_naming_file_path_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: a\n    match: {severity: [urgent]}\n")
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}: rules[0].match.severity[0]" in result.stderr and "'urgent'" in result.stderr


def test_config_check_of_invalid_yaml_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("rules: [\n")
    result = run("config", "check", str(bad))
    assert result.returncode == 1 and "invalid YAML" in result.stderr


def test_test_rules_shows_the_matching_rule_as_json() -> None:
    result = run("config", "test-rules", "--labels", "alertname=Watchdog", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["drop"] is True


def test_test_rules_refuses_a_label_without_equals() -> None:
    result = run("config", "test-rules", "--labels", "oops")
    assert result.returncode == 2 and "expected name=value" in result.stderr
