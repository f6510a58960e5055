"""The shipped config/rules.yaml: every detection reason and the standard kube-prometheus alerts."""

from __future__ import annotations

import pytest

from config.loader import check_file, default_rules_path, load_rules
from core.models import Reason, Severity, Signal
from tests.unit.correlation_support import am_signal, node_signal, object_signal, pod_signal

RULES = load_rules()
W, C, INFO = Severity.WARNING, Severity.CRITICAL, Severity.INFO


def pod(reason: Reason, severity: Severity = W, **details: str | int | None) -> Signal:
    return pod_signal("api-7d9f8-a", reason, deployment="api", node="n1", severity=severity, details=details)


def obj(kind: str, reason: Reason, severity: Severity = W) -> Signal:
    return object_signal(kind, "thing", reason, namespace=None if kind == "Node" else "shop", severity=severity)


K8S = [
    (Reason.CRASH_LOOP_BACK_OFF, pod(Reason.CRASH_LOOP_BACK_OFF), "crashloop", W, "crashloop"),
    (Reason.OOM_KILLED, pod(Reason.OOM_KILLED, C), "oom", C, "oom"),
    (Reason.IMAGE_PULL_BACK_OFF, pod(Reason.IMAGE_PULL_BACK_OFF), "image-pull", W, "image-pull"),
    (Reason.ERR_IMAGE_PULL, pod(Reason.ERR_IMAGE_PULL), "image-pull", W, "image-pull"),
    (Reason.INVALID_IMAGE_NAME, pod(Reason.INVALID_IMAGE_NAME), "image-pull", W, "image-pull"),
    (Reason.CREATE_CONTAINER_CONFIG_ERROR, pod(Reason.CREATE_CONTAINER_CONFIG_ERROR), "container-config", W, None),
    (Reason.CREATE_CONTAINER_ERROR, pod(Reason.CREATE_CONTAINER_ERROR), "container-config", W, None),
    (Reason.RUN_CONTAINER_ERROR, pod(Reason.RUN_CONTAINER_ERROR), "crashloop", W, "crashloop"),
    (Reason.UNSCHEDULABLE, pod(Reason.UNSCHEDULABLE), "scheduling", W, None),
    (Reason.EVICTED, pod(Reason.EVICTED), "evicted", W, None),
    (Reason.NON_ZERO_EXIT, pod(Reason.NON_ZERO_EXIT), "crashloop", W, "crashloop"),
    (Reason.PROBE_FAILURE, pod(Reason.PROBE_FAILURE), "pod-not-ready", W, None),
    (Reason.NOT_READY, pod(Reason.NOT_READY), "pod-not-ready", W, None),
    (Reason.FAILED_MOUNT, pod(Reason.FAILED_MOUNT), "storage", W, None),
    (
        Reason.DEPLOYMENT_UNAVAILABLE,
        obj("Deployment", Reason.DEPLOYMENT_UNAVAILABLE, C),
        "deployment-unavailable",
        C,
        None,
    ),
    (
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        obj("Deployment", Reason.PROGRESS_DEADLINE_EXCEEDED),
        "bad-rollout",
        W,
        "bad-rollout",
    ),
    (Reason.REPLICA_FAILURE, obj("Deployment", Reason.REPLICA_FAILURE), "deployment-unavailable", W, None),
    (
        Reason.STATEFUL_SET_UNAVAILABLE,
        obj("StatefulSet", Reason.STATEFUL_SET_UNAVAILABLE),
        "statefulset-unavailable",
        W,
        None,
    ),
    (Reason.DAEMON_SET_UNAVAILABLE, obj("DaemonSet", Reason.DAEMON_SET_UNAVAILABLE), "daemonset-unavailable", W, None),
    (Reason.JOB_FAILED, obj("Job", Reason.JOB_FAILED), "failed-job", W, "failed-job"),
    (Reason.PVC_PENDING, obj("PersistentVolumeClaim", Reason.PVC_PENDING), "storage", W, None),
    (Reason.NODE_NOT_READY, node_signal("n1"), "node-down", C, "node-not-ready"),
    (Reason.NODE_PRESSURE, obj("Node", Reason.NODE_PRESSURE), "node-pressure", W, None),
    (Reason.SERVICE_NO_ENDPOINTS, obj("Service", Reason.SERVICE_NO_ENDPOINTS), "service-endpoints", W, None),
]


@pytest.mark.parametrize(
    ("signal", "rule", "severity", "playbook"),
    [pytest.param(s, r, sev, p, id=f"k8s-{reason.value}") for reason, s, r, sev, p in K8S],
)
def test_every_detection_reason_has_a_shipped_rule(
    signal: Signal, rule: str, severity: Severity, playbook: str | None
) -> None:
    decision = RULES.evaluate(signal)
    assert (decision.rule_name, decision.severity, decision.playbook, decision.drop) == (
        rule,
        severity,
        playbook,
        False,
    )


def test_the_k8s_table_covers_every_reason_exactly_once() -> None:
    assert sorted(row[0].value for row in K8S) == sorted(r.value for r in Reason)


def alert(name: str, severity: str = "warning", **labels: str) -> Signal:
    return am_signal(name, f"fp-{name}", severity=severity, **labels)


POD = {"namespace": "shop", "pod": "api-7d9f8-a", "container": "app"}
ALERTS = [
    ("KubePodCrashLooping", alert("KubePodCrashLooping", **POD), "crashloop", W, "crashloop"),
    ("KubePodNotReady", alert("KubePodNotReady", namespace="shop", pod="api-7d9f8-a"), "pod-not-ready", W, None),
    (
        "KubeDeploymentReplicasMismatch",
        alert("KubeDeploymentReplicasMismatch", namespace="shop", deployment="api"),
        "deployment-unavailable",
        W,
        None,
    ),
    (
        "KubeDeploymentRolloutStuck",
        alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="api"),
        "bad-rollout",
        W,
        "bad-rollout",
    ),
    (
        "KubeStatefulSetReplicasMismatch",
        alert("KubeStatefulSetReplicasMismatch", namespace="db", statefulset="pg"),
        "statefulset-unavailable",
        W,
        None,
    ),
    (
        "KubeDaemonSetRolloutStuck",
        alert("KubeDaemonSetRolloutStuck", namespace="kube-system", daemonset="cni"),
        "daemonset-unavailable",
        W,
        None,
    ),
    ("KubeContainerWaiting", alert("KubeContainerWaiting", **POD), "container-config", W, None),
    (
        "KubeContainerWaiting-image",
        alert("KubeContainerWaiting", reason="ImagePullBackOff", **POD),
        "container-waiting-image",
        W,
        "image-pull",
    ),
    ("KubeJobFailed", alert("KubeJobFailed", namespace="batch", job_name="nightly"), "failed-job", W, "failed-job"),
    ("KubeNodeNotReady", alert("KubeNodeNotReady", node="n1"), "node-down", C, "node-not-ready"),
    ("KubeNodeUnreachable", alert("KubeNodeUnreachable", node="n1"), "node-down", C, "node-not-ready"),
    ("CPUThrottlingHigh", alert("CPUThrottlingHigh", severity="info", **POD), "cpu-throttling", INFO, None),
    ("CPUThrottlingHigh-warning-label", alert("CPUThrottlingHigh", **POD), "cpu-throttling", INFO, None),
    (
        "KubePersistentVolumeFillingUp",
        alert("KubePersistentVolumeFillingUp", severity="critical", namespace="db", persistentvolumeclaim="data-pg-0"),
        "storage",
        C,
        None,
    ),
    ("TargetDown", alert("TargetDown", namespace="shop", job="api", service="api"), "target-down", W, None),
    ("KubeletDown-unknown-alert", alert("KubeletDown", severity="critical"), "kube-prometheus", C, None),
]


@pytest.mark.parametrize(
    ("signal", "rule", "severity", "playbook"),
    [pytest.param(s, r, sev, p, id=f"alert-{name}") for name, s, r, sev, p in ALERTS],
)
def test_standard_kube_prometheus_alerts_have_a_shipped_rule(
    signal: Signal, rule: str, severity: Severity, playbook: str | None
) -> None:
    decision = RULES.evaluate(signal)
    assert (decision.rule_name, decision.severity, decision.playbook, decision.drop) == (
        rule,
        severity,
        playbook,
        False,
    )


@pytest.mark.parametrize("name", [pytest.param(n, id=f"drops-{n}") for n in ("Watchdog", "InfoInhibitor")])
def test_heartbeat_alerts_are_dropped(name: str) -> None:
    decision = RULES.evaluate(alert(name, severity="none"))
    assert decision.drop and decision.rule_name == "watchdog-heartbeat"


def test_crashloop_caused_by_oom_kills_gets_the_oom_playbook() -> None:
    decision = RULES.evaluate(pod(Reason.CRASH_LOOP_BACK_OFF, last_reason="OOMKilled", exit_code=137))
    assert (decision.rule_name, decision.severity, decision.playbook) == ("crashloop-oom", C, "oom")


def test_node_down_inhibits_k8s_pod_signals_on_that_node_only() -> None:
    node = node_signal("n1")
    assert RULES.inhibited(pod(Reason.NOT_READY), [node]) == "node-down"
    other = pod_signal("web-1", Reason.NOT_READY, node="n2")
    assert RULES.inhibited(other, [node]) is None


def test_shipped_rules_file_passes_config_check() -> None:
    assert check_file(default_rules_path()) == []


def test_shipped_playbook_names_are_the_known_ones() -> None:
    names = {rule.playbook for rule in RULES.rules if rule.playbook}
    assert names == {"crashloop", "oom", "bad-rollout", "node-not-ready", "failed-job", "image-pull"}
