"""A Serve update of the running platform (a changed rule, a changed replica count) keeps state.

The same update ``serve deploy serve_config.yaml`` performs, through Serve's Python API on the
session cluster: the ``alerts`` app is deployed again with a new ``user_config.rules_file``
(a rules file with one more rule) and ``num_replicas: 2``. Serve reconfigures the replicas
in place, the rule engine reloads its rules, and an incident and a pending approval made
before the update are still there, unchanged, afterwards. The test puts the shipped rules
and one replica back when it ends, so later tests see the platform as it was.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from actors import remote
from deployments import alerts
from tests.e2e.conftest import Platform
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload

pytestmark = pytest.mark.e2e

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "config" / "rules.yaml"
NEW_RULE = """rules:
  - name: serve-update-probe-drop
    description: Added by the serve update test; drops its probe alerts.
    match:
      source: [alertmanager]
      reason: [ServeUpdateProbe]
    drop: true

"""


def _post(platform: Platform, *alerts_: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        platform.base_url + "/api/alert/webhook", json=am_payload(*alerts_), headers=platform.am_headers(), timeout=60
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _ops(platform: Platform, path: str) -> Any:
    answer = httpx.get(platform.base_url + path, headers=platform.ops_headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _pending_for(platform: Platform, pod: str) -> list[dict[str, Any]]:
    return [a for a in _ops(platform, "/api/approvals")["approvals"] if pod in str(a)]


def _deploy_alerts(platform: Platform, rules_file: str, replicas: int) -> None:
    app = alerts.AlertsIngress.options(user_config={"rules_file": rules_file}, num_replicas=replicas)
    serve.run(app.bind(platform.settings), name="alerts", route_prefix="/api/alert", blocking=False)


def _running_replicas() -> int:
    status = serve.status().applications["alerts"].deployments["AlertsIngress"]
    states: dict[Any, int] = dict(status.replica_states)
    return sum(n for state, n in states.items() if str(getattr(state, "value", state)) == "RUNNING")


def _rule_names(platform: Platform) -> list[str]:
    names: list[str] = ray.get(remote.rule_engine(platform.settings).rule_names.remote(), timeout=30)
    return names


def test_a_serve_update_reloads_rules_and_scales_without_losing_incidents_or_pending_approvals(
    platform: Platform, tmp_path: Path
) -> None:
    # State before the update: an incident, and a pending approval (crash loop -> restart playbook).
    # A workload of its own: pods of one deployment are one incident, and other tests' runs on the
    # demo workloads must not be mistaken for ours. Its read steps find nothing, which lets the run
    # go on to the approval of the restart.
    deployment = f"upd-{uuid.uuid4().hex[:6]}"
    pod = f"{deployment}-7d9f8-x2k4p"
    crash = am_alert(
        "KubePodCrashLooping",
        f"update-{pod}",
        namespace="production",
        pod=pod,
        deployment=deployment,
        container="app",
        test="serve-update",
    )
    _post(platform, crash)
    (approval,) = wait_until(lambda: _pending_for(platform, pod), timeout=120, interval=0.5, message="approval")
    incidents = [i for i in _ops(platform, "/api/incidents?limit=1000")["incidents"] if i["labels"].get("pod") == pod]
    assert incidents
    probe = am_alert("ServeUpdateProbe", "probe-before", namespace="update", test="serve-update")
    assert _post(platform, probe)["dropped"] == 0, "the probe rule does not exist yet"

    rules = tmp_path / "rules.yaml"
    shipped = SHIPPED_RULES.read_text()
    rules.write_text(shipped.replace("rules:\n", NEW_RULE, 1))
    try:
        _deploy_alerts(platform, str(rules), replicas=2)
        wait_until(lambda: _running_replicas() == 2, timeout=120, interval=0.5, message="two alerts replicas")
        wait_until(
            lambda: "serve-update-probe-drop" in _rule_names(platform), timeout=60, interval=0.5, message="new rule"
        )
        later = am_alert("ServeUpdateProbe", "probe-after", namespace="update", test="serve-update")
        assert _post(platform, later)["dropped"] == 1, "the changed rule applies after the update"

        # Nothing lost: the incident and the pending approval are as they were.
        for incident in incidents:
            again = _ops(platform, f"/api/incidents/{incident['id']}")
            assert again["status"] == incident["status"] and again["id"] == incident["id"]
        still = _pending_for(platform, pod)
        assert [a["id"] for a in still] == [approval["id"]] and still[0]["state"] == "pending"
        health = _ops(platform, "/health")
        assert health["subsystems"][remote.RULE_ENGINE]["detail"]["rules_reload_error"] is None
    finally:
        _deploy_alerts(platform, str(SHIPPED_RULES), replicas=1)
        wait_until(lambda: _running_replicas() == 1, timeout=120, interval=0.5, message="one alerts replica again")
        wait_until(
            lambda: "serve-update-probe-drop" not in _rule_names(platform),
            timeout=60,
            interval=0.5,
            message="shipped rules again",
        )
