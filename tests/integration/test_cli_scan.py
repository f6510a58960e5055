"""``aiops scan`` against ``aiops sandbox``: both as the user runs them, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until

AIOPS = str(Path(sys.executable).parent / "aiops")


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Path]:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [AIOPS, "sandbox", "--scenario", "demo", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: kubeconfig.exists() and kubeconfig.stat().st_size > 0, timeout=30, message="kubeconfig")
        yield kubeconfig
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def scan(kubeconfig: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [AIOPS, "scan", "--kubeconfig", str(kubeconfig), *extra], capture_output=True, text=True, timeout=60, env=env,
        check=False,
    )


def test_scan_json_lists_the_demo_failures_with_the_documented_fields(sandbox_process: Path) -> None:
    def findings() -> list[dict[str, str]]:
        result = scan(sandbox_process, "--output", "json")
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, str]] = json.loads(result.stdout)
        reasons = {(r["namespace"], r["reason"]) for r in rows}
        pull_failure = ("staging", "ImagePullBackOff") in reasons or ("staging", "ErrImagePull") in reasons
        checkout = any(r["namespace"] == "production" and r["name"].startswith("checkout") for r in rows)
        return rows if pull_failure and checkout else []

    # The simulator plays the scenario out over a few seconds: wait until both demo failures are visible.
    rows = wait_until(findings, timeout=60, interval=0.5, message="image pull failure in staging and checkout failure")
    assert all(set(r) == {"kind", "namespace", "name", "reason", "severity", "message"} for r in rows)
    assert not any(r["name"].startswith("payments") for r in rows)


def test_scan_of_one_namespace_shows_a_table_of_only_that_namespace(sandbox_process: Path) -> None:
    def table() -> str:
        result = scan(sandbox_process, "--namespace", "staging")
        assert result.returncode == 0, result.stderr
        return result.stdout if "search" in result.stdout else ""

    out = wait_until(table, timeout=30, interval=0.5, message="staging findings")
    assert out.splitlines()[0].startswith("SEVERITY") and "production" not in out


def test_scan_of_an_unreachable_cluster_fails_with_a_clear_message(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    result = scan(kubeconfig)
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr
