from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.loader import load_rules, rules_from_text
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def signal(reason: str, source: str = "alertmanager", severity: str = "warning", **labels: str) -> Signal:
    kind = labels.pop("kind", None)
    obj = ObjectRef(kind=kind, name=labels.get(kind.lower(), "x"), namespace=labels.get("namespace")) if kind else None
    return Signal(
        source=SignalSource(source),
        reason=reason,
        severity=Severity(severity),
        labels=labels,
        object=obj,
        node=labels.get("node"),
        observed_at=NOW,
        fingerprint=Fingerprint(f"fp-{reason}-{sorted(labels.items())}"),
    )


RULES = """
rules:
  - name: heartbeat
    match: {reason: [Watchdog]}
    drop: true
  - name: prod-critical
    match: {namespaces: ["prod-*"], matchers: ['team=~"pay.*"']}
    raise_severity: critical
    continue: true
    notify: [pager]
  - name: crash
    match: {reason: [KubePodCrashLooping]}
    playbook: crashloop
    group_by: [namespace, deployment]
  - name: any-prod
    match: {namespaces: ["prod-*"]}
    notify: [prod-channel]
"""


@pytest.mark.parametrize(
    ("sig", "rule", "severity", "playbook", "notify", "drop"),
    [
        pytest.param(signal("Watchdog"), "heartbeat", "warning", None, (), True, id="watchdog-is-dropped"),
        pytest.param(
            signal("KubePodCrashLooping", namespace="prod-eu", team="payments", deployment="api"),
            "prod-critical",
            "critical",
            "crashloop",
            ("pager",),
            False,
            id="continue-adds-later-actions",
        ),
        pytest.param(
            signal("KubePodCrashLooping", namespace="staging", deployment="api"),
            "crash",
            "warning",
            "crashloop",
            (),
            False,
            id="first-match-stops",
        ),
        pytest.param(
            signal("TargetDown", namespace="prod-us"),
            "any-prod",
            "warning",
            None,
            ("prod-channel",),
            False,
            id="namespace-glob",
        ),
        pytest.param(
            signal("Something", namespace="dev"), "default", "warning", None, (), False, id="no-match-default"
        ),
    ],
)
def test_rule_evaluation(
    sig: Signal, rule: str, severity: str, playbook: str | None, notify: tuple[str, ...], drop: bool
) -> None:
    decision = rules_from_text(RULES).evaluate(sig)
    assert (decision.rule_name, decision.severity.value, decision.playbook, decision.notify, decision.drop) == (
        rule,
        severity,
        playbook,
        notify,
        drop,
    )


def test_group_key_uses_group_by_labels_so_pods_of_one_deployment_share_an_incident() -> None:
    rules = rules_from_text(RULES)
    a = rules.evaluate(signal("KubePodCrashLooping", namespace="staging", deployment="api", pod="api-1"))
    b = rules.evaluate(signal("KubePodCrashLooping", namespace="staging", deployment="api", pod="api-2"))
    c = rules.evaluate(signal("KubePodCrashLooping", namespace="staging", deployment="web", pod="web-1"))
    assert a.group_key == b.group_key != c.group_key


def test_default_rule_groups_by_fingerprint() -> None:
    rules = rules_from_text("rules: []")
    one, two = signal("A", x="1"), signal("A", x="2")
    assert rules.evaluate(one).group_key != rules.evaluate(two).group_key


def test_inhibit_mutes_pods_on_a_failing_node_only() -> None:
    rules = rules_from_text("""
rules:
  - name: node-down
    match: {reason: [NodeNotReady]}
    inhibit:
      - target: ['kind="Pod"']
        equal: [node]
""")
    node = signal("NodeNotReady", source="k8s", severity="critical", kind="Node", node="n1")
    pod_same = signal("CrashLoopBackOff", source="k8s", kind="Pod", pod="p", namespace="a", node="n1")
    pod_other = signal("CrashLoopBackOff", source="k8s", kind="Pod", pod="q", namespace="a", node="n2")
    assert rules.inhibited(pod_same, [node]) == "node-down"
    assert rules.inhibited(pod_other, [node]) is None
    resolved = node.model_copy(update={"status": SignalStatus.RESOLVED})
    assert rules.inhibited(pod_same, [resolved]) is None


def test_shipped_rules_drop_watchdog_and_group_node_alerts() -> None:
    rules = load_rules()
    assert rules.evaluate(signal("Watchdog")).drop
    decision = rules.evaluate(signal("KubeNodeNotReady", node="worker-2"))
    assert decision.severity is Severity.CRITICAL and "node=worker-2" in decision.group_key
