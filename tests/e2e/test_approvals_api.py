"""Remediation through the ops API and the CLI: alert -> playbook run -> approval -> guarded execution.

The rule engine hands the incident to ``aiops-approvals``, which runs the read steps through
the MCP server subprocess and waits for a human; the decision arrives over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import OPS_TOKEN, Platform
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload

pytestmark = pytest.mark.e2e
AIOPS = str(Path(sys.executable).parent / "aiops")


def pending_for(platform: Platform, pod: str) -> list[dict[str, Any]]:
    answer = httpx.get(platform.base_url + "/api/approvals", headers=platform.ops_headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    return [a for a in answer.json()["approvals"] if pod in str(a)]


def cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPS_API_TOKEN": OPS_TOKEN}
    return subprocess.run(
        [AIOPS, *args, "--url", platform.base_url], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_an_alert_with_a_playbook_waits_for_approval_and_only_an_authorised_approver_executes_it(
    platform: Platform,
) -> None:
    pods = [
        p["metadata"]["name"]
        for p in platform.sandbox.objects("Pod", "production")
        if p["metadata"]["name"].startswith("payments-")
    ]
    pod = pods[0]
    alert = am_alert(
        "KubePodCrashLooping",
        f"approve-{pod}",
        namespace="production",
        pod=pod,
        deployment="payments",
        container="payments",
        test="approvals-api",
    )
    assert (
        httpx.post(
            platform.base_url + "/api/alert/webhook", json=am_payload(alert), headers=platform.am_headers(), timeout=60
        ).status_code
        == 200
    )
    (approval,) = wait_until(
        lambda: pending_for(platform, pod),
        timeout=120,
        interval=0.5,
        message="an approval request for restarting the pod",
    )
    approval_id = approval["id"]

    listed = cli(platform, "approvals")
    assert listed.returncode == 0 and approval_id in listed.stdout, listed.stderr

    stranger = httpx.post(
        f"{platform.base_url}/api/approvals/{approval_id}",
        headers=platform.ops_headers(),
        json={"decision": "approve", "who": "mallory"},
        timeout=60,
    )
    assert stranger.status_code == 409, stranger.text
    assert any(p["metadata"]["name"] == pod for p in platform.sandbox.objects("Pod", "production"))

    approved = cli(platform, "approve", approval_id, "--who", "ops")
    assert approved.returncode == 0, approved.stderr
    wait_until(
        lambda: all(p["metadata"]["name"] != pod for p in platform.sandbox.objects("Pod", "production")),
        timeout=60,
        message="the approved pod deletion to happen",
    )
    again = cli(platform, "approve", approval_id, "--who", "ops")
    assert again.returncode == 1 and "already" in again.stderr


def test_bad_decisions_get_clear_http_errors(platform: Platform) -> None:
    url = platform.base_url + "/api/approvals/"
    unknown = httpx.post(url + "zz9zz9", headers=platform.ops_headers(), json={"decision": "approve"}, timeout=30)
    assert unknown.status_code == 404, unknown.text
    bad = httpx.post(url + "zz9zz9", headers=platform.ops_headers(), json={"decision": "maybe"}, timeout=30)
    assert bad.status_code == 400 and "invalid decision" in bad.json()["message"]
    assert httpx.post(url + "zz9zz9", json={"decision": "approve"}, timeout=30).status_code == 401
    assert cli(platform, "reject", "zz9zz9").returncode == 1
