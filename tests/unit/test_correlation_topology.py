"""Topology grouping, inhibition and the two storms that must collapse into one incident each."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from config.loader import load_rules
from core.correlation_events import AttachSignal, OpenIncident, ResolveIncident, ResolveReason, SuppressReason
from core.incident_groups import CorrelationState
from core.models import IncidentStatus, Reason, Signal
from core.noise import simulate
from tests.unit.correlation_support import (
    NO_WAIT_RULES,
    T0,
    Driver,
    am_signal,
    inline_rules,
    node_signal,
    pod_name,
    pod_signal,
    resolved,
)

DEPLOYMENTS = ("cart", "checkout", "search", "auth", "ads")


def node_storm_k8s_pods() -> list[Signal]:
    return [
        pod_signal(
            pod_name(DEPLOYMENTS[i % 5], i),
            Reason.NOT_READY,
            deployment=DEPLOYMENTS[i % 5],
            node="n1",
            when=1 + i * 0.2,
        )
        for i in range(37)
    ]


def node_storm_alerts() -> list[Signal]:
    pods = [
        am_signal(
            "KubePodNotReady", f"pnr{i}", starts=20 + i * 0.1, namespace="shop", pod=pod_name(DEPLOYMENTS[i % 5], i)
        )
        for i in range(37)
    ]
    nodes = [
        am_signal("KubeNodeNotReady", "knr", starts=25, node="n1", severity="warning"),
        am_signal("KubeNodeUnreachable", "knu", starts=25, node="n1"),
        am_signal("KubeletDown", "kd", starts=26, node="n1", severity="critical"),
    ]
    return pods + nodes


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(lambda: [node_signal("n1"), *node_storm_k8s_pods(), *node_storm_alerts()], id="node-first"),
        pytest.param(lambda: [*node_storm_k8s_pods(), node_signal("n1", 9), *node_storm_alerts()], id="pods-first"),
        pytest.param(
            lambda: [
                *node_storm_alerts()[:37],
                *node_storm_k8s_pods(),
                node_signal("n1", 30),
                *node_storm_alerts()[37:],
            ],
            id="alerts-before-the-watchers",
        ),
    ],
)
def test_node_failure_storm_collapses_into_one_incident_with_one_notification(
    order: Callable[[], list[Signal]],
) -> None:
    signals = order()
    assert len(signals) == 1 + 37 + 40
    report = simulate(load_rules(), signals, now_fn=lambda s: max(s.observed_at, T0))
    assert (report.signals_in, report.incidents_out, report.notifications) == (78, 1, 1)
    (group,) = report.state.active_groups()
    assert group.summary() == "node n1 is NotReady; 37 pods on it are affected"
    assert group.playbook == "node-not-ready" and group.severity.value == "critical"


def bad_rollout_k8s() -> list[Signal]:
    return [pod_signal(pod_name("api", i), deployment="api", node=f"n{i % 3}", when=i) for i in range(20)]


def bad_rollout_alerts() -> list[Signal]:
    mismatch = am_signal("KubeDeploymentReplicasMismatch", "rm", starts=30, namespace="shop", deployment="api")
    loops = [
        am_signal("KubePodCrashLooping", f"cl{i}", starts=40 + i, namespace="shop", pod=pod_name("api", i))
        for i in range(20)
    ]
    return [mismatch, *loops]


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(lambda: [*bad_rollout_k8s(), *bad_rollout_alerts()], id="watchers-first"),
        pytest.param(lambda: [*bad_rollout_alerts(), *bad_rollout_k8s()], id="alerts-first"),
    ],
)
def test_bad_rollout_collapses_into_one_incident(order: Callable[[], list[Signal]]) -> None:
    report = simulate(load_rules(), order(), now_fn=lambda s: T0)
    assert (report.signals_in, report.incidents_out, report.notifications) == (41, 1, 1)
    (group,) = report.state.active_groups()
    assert group.summary().startswith("deployment shop/api: 20 pod(s) failing")


def test_inhibited_pod_joins_the_node_incident_as_affected_without_a_notification() -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    run.send(node_signal("n1", 0))
    node_incident = run.opened()[0].incident_id
    out = run.send(pod_signal("lone-pod", node="n1", when=1))
    attach = [e for e in out if isinstance(e, AttachSignal)]
    assert [(a.incident_id, a.affected) for a in attach] == [(node_incident, True)]
    assert [s.detail for s in run.suppressed(SuppressReason.INHIBIT)] == ["node-down"]
    assert len(run.notifications()) == 1


@pytest.mark.parametrize(
    ("pod", "joins_node"),
    [
        pytest.param(pod_signal("other-node-pod", node="n2", when=1), False, id="pod-on-another-node-is-not-inhibited"),
        pytest.param(pod_signal("no-node-pod", when=1), False, id="pod-without-node-is-not-inhibited"),
        pytest.param(pod_signal("same-node-pod", node="n1", when=1), True, id="pod-on-the-failed-node-joins"),
    ],
)
def test_inhibition_only_applies_to_pods_on_the_failed_node(pod: Signal, joins_node: bool) -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    run.send(node_signal("n1", 0))
    run.send(pod)
    assert (len(run.opened()) == 1) is joins_node


def test_resolved_node_inhibits_nothing() -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    node = node_signal("n1", 0)
    run.send(node)
    run.send(resolved(node, 5))
    run.send(pod_signal("late-pod", node="n1", when=6))
    assert len(run.opened()) == 2 and run.suppressed(SuppressReason.INHIBIT) == []


def test_pod_incident_already_open_moves_into_the_node_incident_and_resolves_as_merged() -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    run.send(pod_signal("api-7d9f8-a", deployment="api", node="n1", when=0))
    run.send(pod_signal("web-5c6d7-b", deployment="web", node="n2", when=0))
    pod_incident = run.opened()[0].incident_id
    run.send(node_signal("n1", 5))
    node_incident = run.opened()[-1].incident_id
    moved = [e for e in run.of(AttachSignal) if e.moved_from is not None]
    assert [(m.moved_from, m.incident_id, m.affected) for m in moved] == [(pod_incident, node_incident, True)]
    merged = [e for e in run.of(ResolveIncident) if e.reason is ResolveReason.MERGED]
    assert [(m.incident_id, m.merged_into) for m in merged] == [(pod_incident, node_incident)]
    assert len(run.state.active_groups()) == 2


@pytest.mark.parametrize(
    ("alert", "joins"),
    [
        pytest.param(
            am_signal("KubeNodeNotReady", "a1", node="n1"), "node", id="alert-about-the-node-joins-node-incident"
        ),
        pytest.param(
            am_signal("KubePodCrashLooping", "a2", namespace="shop", pod="api-7d9f8-a"),
            "pod",
            id="alert-about-a-known-pod-joins-its-incident",
        ),
        pytest.param(
            am_signal("KubeContainerWaiting", "a3", namespace="shop", pod="api-7d9f8-zzz"),
            "pod",
            id="pod-of-a-known-replicaset-maps-to-its-deployment",
        ),
        pytest.param(
            am_signal("KubeDeploymentReplicasMismatch", "a4", namespace="shop", deployment="api"),
            "pod",
            id="alert-about-the-deployment-joins-its-pods-incident",
        ),
        pytest.param(
            am_signal("KubePodCrashLooping", "a5", namespace="shop", pod="api-5c6d7-zzz"),
            None,
            id="similar-pod-name-of-an-unknown-replicaset-is-not-guessed",
        ),
        pytest.param(
            am_signal("KubePodCrashLooping", "a6", namespace="other", pod="api-7d9f8-a"),
            None,
            id="same-pod-name-in-another-namespace-is-another-pod",
        ),
    ],
)
def test_alertmanager_alerts_join_the_incident_of_the_object_they_are_about(alert: Signal, joins: str | None) -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    run.send(node_signal("n1", 0))
    run.send(pod_signal("api-7d9f8-a", deployment="api", node="n2", when=0))
    incidents = {"node": run.opened()[0].incident_id, "pod": run.opened()[1].incident_id}
    out = run.send(alert, 5)
    if joins is None:
        assert any(isinstance(e, OpenIncident) for e in out)
    else:
        assert [e.incident_id for e in out if isinstance(e, AttachSignal)] == [incidents[joins]]


def test_deployment_alert_joins_the_node_incident_holding_its_pods() -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    run.send(node_signal("n1", 0))
    run.send(pod_signal("api-7d9f8-a", deployment="api", node="n1", when=1))
    out = run.send(am_signal("KubeDeploymentReplicasMismatch", "rm", namespace="shop", deployment="api"), 5)
    assert [(e.incident_id, e.affected) for e in out if isinstance(e, AttachSignal)] == [
        (run.opened()[0].incident_id, True)
    ]


def test_node_incident_resolves_only_when_the_node_and_every_pod_recovered_and_counts_distinct_pods() -> None:
    run = Driver(rules=inline_rules(NO_WAIT_RULES))
    node = node_signal("n1", 0)
    crash = pod_signal("api-7d9f8-a", deployment="api", node="n1", when=1)
    unready = pod_signal("api-7d9f8-a", Reason.NOT_READY, deployment="api", node="n1", when=1)
    for signal in (node, crash, unready):
        run.send(signal)
    (group,) = run.state.active_groups()
    assert group.summary() == "node n1 is NotReady; 1 pod on it is affected"
    run.send(resolved(node, 10))
    run.send(resolved(crash, 11))
    assert run.state.groups[group.group_key].status is IncidentStatus.OPEN
    run.send(resolved(unready, 12))
    assert run.state.groups[group.group_key].status is IncidentStatus.RESOLVED


@pytest.mark.parametrize(
    "restart_every",
    [
        pytest.param(1, id="rebuilt-from-storage-after-every-signal"),
        pytest.param(25, id="rebuilt-from-storage-every-25-signals"),
    ],
)
def test_restart_from_storage_mid_storm_gives_the_same_effects_as_an_uninterrupted_run(restart_every: int) -> None:
    signals = [*node_storm_k8s_pods()[:20], node_signal("n1", 9), *node_storm_k8s_pods()[20:], *node_storm_alerts()]
    steady = Driver()
    restarted = Driver()
    for number, signal in enumerate(signals):
        steady.send(signal)
        restarted.send(signal)
        if number % restart_every == 0:
            stored = json.loads(json.dumps(restarted.state.for_storage()))
            restarted = Driver(state=CorrelationState.from_storage(stored), effects=restarted.effects)
    assert restarted.effects == steady.effects
    assert restarted.state == steady.state
