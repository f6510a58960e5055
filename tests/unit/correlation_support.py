"""Builders for correlation tests: real-shaped signals and a driver that records effects.

k8s signals come from real ``Finding.to_signal`` (the labels watchers send), Alertmanager
signals from real webhook bodies through ``adapters.alertmanager.to_signals``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.alertmanager import AmWebhook, to_signals
from config.loader import load_rules, rules_from_text
from core.correlation import CorrelationPolicy, Correlator
from core.correlation_events import Effect, Event, Notify, OpenIncident, Suppressed, SuppressReason, Tick
from core.detectors.findings import Finding
from core.incident_groups import CorrelationState
from core.models import ObjectRef, Reason, Severity, Signal, SignalStatus
from core.rules import RuleSet
from tests.payloads import am_alert, am_payload

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def owners(namespace: str, deployment: str, rs_hash: str = "7d9f8") -> tuple[ObjectRef, ...]:
    return (
        ObjectRef(kind="ReplicaSet", namespace=namespace, name=f"{deployment}-{rs_hash}"),
        ObjectRef(kind="Deployment", namespace=namespace, name=deployment),
    )


def pod_name(deployment: str, index: int, rs_hash: str = "7d9f8") -> str:
    return f"{deployment}-{rs_hash}-p{index:04d}"


def pod_signal(
    name: str,
    reason: Reason = Reason.CRASH_LOOP_BACK_OFF,
    *,
    namespace: str = "shop",
    deployment: str | None = None,
    node: str | None = None,
    severity: Severity = Severity.WARNING,
    when: float = 0,
    container: str | None = "app",
    details: dict[str, str | int | None] | None = None,
) -> Signal:
    finding = Finding(
        kind="Pod",
        namespace=namespace,
        name=name,
        reason=reason,
        severity=severity,
        message=f"{name}: {reason.value}",
        container=container,
        owners=owners(namespace, deployment) if deployment else (),
        node=node,
        details=details or {},
    )
    return finding.to_signal(at(when))


def object_signal(
    kind: str,
    name: str,
    reason: Reason,
    *,
    namespace: str | None = "shop",
    when: float = 0,
    severity: Severity = Severity.WARNING,
) -> Signal:
    finding = Finding(
        kind=kind,
        namespace=namespace,
        name=name,
        reason=reason,
        severity=severity,
        message=f"{kind} {name}: {reason.value}",
        node=name if kind == "Node" else None,
    )
    return finding.to_signal(at(when))


def node_signal(node: str, when: float = 0) -> Signal:
    return object_signal("Node", node, Reason.NODE_NOT_READY, namespace=None, when=when, severity=Severity.CRITICAL)


def resolved(signal: Signal, when: float) -> Signal:
    return signal.model_copy(update={"status": SignalStatus.RESOLVED, "observed_at": at(when)})


def refire(signal: Signal, when: float) -> Signal:
    return signal.model_copy(update={"status": SignalStatus.FIRING, "observed_at": at(when)})


def am_signal(
    alertname: str,
    fingerprint: str,
    *,
    status: str = "firing",
    starts: float = 0,
    ends: float | None = None,
    **labels: str,
) -> Signal:
    def iso(seconds: float) -> str:
        return at(seconds).isoformat().replace("+00:00", "Z")

    alert: dict[str, Any] = am_alert(
        alertname,
        fingerprint,
        status=status,
        starts_at=iso(starts),
        ends_at=iso(ends) if ends is not None else "0001-01-01T00:00:00Z",
        **labels,
    )
    (signal,) = to_signals(AmWebhook.model_validate(am_payload(alert, status=status)), at(ends or starts))
    return signal


@dataclass
class Driver:
    """Feeds events at given times and keeps the state and every effect."""

    rules: RuleSet = field(default_factory=load_rules)
    policy: CorrelationPolicy = field(default_factory=CorrelationPolicy)
    state: CorrelationState = field(default_factory=CorrelationState.from_scratch)
    effects: list[Effect] = field(default_factory=list)

    correlator: Correlator = field(init=False)

    def __post_init__(self) -> None:
        # One correlator per driver, so its index memo is exercised like in the actor.
        self.correlator = Correlator(self.rules, self.policy)

    def send(self, item: Signal | Event, when: float | None = None) -> list[Effect]:
        event = self.correlator.event(item) if isinstance(item, Signal) else item
        now = at(when) if when is not None else (item.observed_at if isinstance(item, Signal) else T0)
        self.state, out = self.correlator.advance(self.state, event, now)
        self.effects.extend(out)
        return list(out)

    def feed(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self.send(signal)

    def tick(self, when: float) -> list[Effect]:
        return self.send(Tick(), when)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]

    def notifications(self) -> list[Notify]:
        return self.of(Notify)

    def opened(self) -> list[OpenIncident]:
        return self.of(OpenIncident)

    def suppressed(self, reason: SuppressReason) -> list[Suppressed]:
        return [e for e in self.of(Suppressed) if e.reason is reason]


def inline_rules(text: str) -> RuleSet:
    return rules_from_text(text)


NO_WAIT_RULES = """
rules:
  - name: node-down
    match: {reason: [NodeNotReady, KubeNodeNotReady]}
    set_severity: critical
    group_by: [node]
    cooldown: 10m
    inhibit:
      - target: ['source="k8s"', 'kind="Pod"']
        equal: [node]
  - name: crashloop
    match: {reason: [CrashLoopBackOff, KubePodCrashLooping]}
    group_by: [namespace, deployment, pod]
    cooldown: 5m
  - name: any
    group_by: [alertname, reason, namespace, pod, deployment, node, job_name]
    cooldown: 5m
"""
