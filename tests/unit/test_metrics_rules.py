"""The agent's own Prometheus rules and Grafana dashboard stay valid and in step with the code.

``promtool`` (Debian's prometheus package, installed by ``.ci/run``) checks the rules and
runs their unit tests; every metric a rule or a dashboard panel references must be declared
in ``adapters/metrics.py``; every alert has a runbook section in the README.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.metrics import DECLARED

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "aiops-rules.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "aiops-rules.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "aiops.json"
PROVISIONING = ROOT / "config" / "grafana" / "provisioning"
README = ROOT / "README.md"

_METRIC = re.compile(r"\b(aiops_[a-z0-9_]+)\b")
_PROMQL_WORDS = {"aiops_self"}  # a label on our alerts, not a metric


def referenced(expr: str) -> set[str]:
    return {m for m in _METRIC.findall(expr) if m not in _PROMQL_WORDS}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    return found


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_the_rules_unit_tests_pass_in_promtool() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_refuses_a_broken_rule_so_the_check_above_means_something(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(aiops_x[5m])\n")
    done = subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


def test_the_alerts_cover_what_the_agent_must_be_watched_for() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert {
        "AiopsWatchStreamDown",
        "AiopsWatchReconnectStorm",
        "AiopsRcaFailures",
        "AiopsRcaFallbacks",
        "AiopsApprovalsExpiring",
        "AiopsWebhookErrors",
        "AiopsWebhookAuthFailures",
        "AiopsRuleEngineDown",
    } <= names


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_every_metric_a_rule_references_is_declared(rule: dict[str, Any]) -> None:
    used = referenced(rule["expr"])
    assert used or 'up{job="aiops"}' in rule["expr"], "a rule about the agent must use the agent's metrics"
    assert used <= DECLARED, f"not declared in adapters/metrics.py: {sorted(used - DECLARED)}"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda r: r["alert"])
def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_in_the_readme(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    assert alert["annotations"]["summary"]
    anchor = alert["alert"].lower()
    assert alert["annotations"]["runbook_url"] == f"README.md#{anchor}"
    headings = {line.lstrip("#").strip().lower() for line in README.read_text().splitlines() if line.startswith("#")}
    assert anchor in headings, f"README.md has no runbook heading '#### {alert['alert']}'"


def test_the_dashboard_parses_and_every_panel_queries_declared_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "ray-aiops"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    exprs = _dashboard_exprs()
    assert len(exprs) >= 15
    for expr in exprs:
        used = referenced(expr)
        assert used, f"panel expression without an aiops metric: {expr}"
        assert used <= DECLARED, f"{expr}: not declared: {sorted(used - DECLARED)}"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_shows_every_declared_metric_family() -> None:
    shown = set().union(*(referenced(e) for e in _dashboard_exprs()))
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in DECLARED}
    shown_families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in shown}
    assert families - shown_families == set(), "declared but on no panel"


def test_the_promql_of_every_panel_is_valid_for_promtool(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(_dashboard_exprs())],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisioning_points_at_the_dashboards_folder_and_the_prometheus_datasource() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "aiops.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
