"""The correlator's state: incident groups, the signals in them, and what topology says.

Everything here is a frozen, JSON-serialisable value, so the RuleEngine actor can write
``CorrelationState.for_storage()`` to Redis or Postgres after each batch and continue
from ``CorrelationState.from_storage(...)`` after Ray restarts it, with the same
incidents, the same pending notifications and the same flapping history.

Topology helpers live here too, because they only read signals: which pod a signal is
about, which node that pod runs on, which Deployment owns it. A pod name is mapped to
its Deployment only when an owner chain says so (the signal's own, or a Kubernetes
signal already in state for that pod or its ReplicaSet); ``api-7d9f8-x2x1q`` is never
guessed to belong to ``api`` from the name alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import IncidentId, IncidentStatus, ObjectRef, Severity, Signal, SignalSource, SignalStatus
from core.silences import MaintenanceWindow, Silence

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class NotifyKind(StrEnum):
    NEW = "new"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    RESOLVED = "resolved"


class TrackedSignal(BaseModel):
    """The latest observation of one fingerprint inside a group, with its firing/resolved times."""

    model_config = _FROZEN

    signal: Signal
    severity: Severity = Field(description="Severity after rules (Decision.severity).")
    rule: str
    firing_at: datetime | None = Field(default=None, description="observed_at of the latest firing.")
    resolved_at: datetime | None = Field(default=None, description="observed_at of the latest recovery.")
    affected: bool = Field(default=False, description="A consequence (pod on a failed node), not a cause.")
    inhibitor: bool = Field(default=False, description="Matches a rule with inhibit clauses.")
    seen: int = 1

    @property
    def status(self) -> SignalStatus:
        if self.firing_at is not None and (self.resolved_at is None or self.firing_at > self.resolved_at):
            return SignalStatus.FIRING
        return SignalStatus.RESOLVED

    @property
    def firing(self) -> bool:
        return self.status is SignalStatus.FIRING


class IncidentGroup(BaseModel):
    """One incident as the correlator sees it: its signals, lifecycle and pending notification."""

    model_config = _FROZEN

    incident_id: IncidentId
    group_key: str
    rule: str
    status: IncidentStatus = IncidentStatus.OPEN
    severity: Severity
    title: str
    playbook: str | None = None
    routes: tuple[str, ...] = ()
    namespace: str | None = None
    anchor: ObjectRef | None = Field(default=None, description="Topology object: Node, Deployment or the object.")
    opened_at: datetime
    updated_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    group_wait: float = 0.0
    cooldown: float = 300.0
    signals: dict[str, TrackedSignal] = Field(default_factory=dict)
    notified: bool = Field(default=False, description="A new/reopened notification went out.")
    pending: NotifyKind | None = None
    due_at: datetime | None = None
    duplicates: int = 0
    reopened: int = 0

    @property
    def active(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def node(self) -> str | None:
        """The node of a node incident, else None."""
        return self.anchor.name if self.anchor is not None and self.anchor.kind == "Node" else None

    def firing(self) -> list[TrackedSignal]:
        return [t for t in self.signals.values() if t.firing]

    def affected_pods(self) -> set[str]:
        return {key for t in self.signals.values() if t.affected and (key := pod_key(t.signal)) is not None}

    def summary(self) -> str:
        """One line for humans: the node incident names the node and counts distinct affected pods."""
        if self.node is not None:
            pods = len(self.affected_pods())
            noun = "pod" if pods == 1 else "pods"
            verb = "is" if pods == 1 else "are"
            return f"node {self.node} is NotReady; {pods} {noun} on it {verb} affected"
        firing = self.firing()
        if self.anchor is not None and self.anchor.kind == "Deployment":
            failing = {key for t in firing if (key := pod_key(t.signal)) is not None}
            reasons = sorted({t.signal.reason for t in firing})
            subject = f"deployment {self.anchor.namespace}/{self.anchor.name}"
            if failing:
                return f"{subject}: {len(failing)} pod(s) failing ({', '.join(reasons)})"
            return f"{subject}: {', '.join(reasons) or 'recovered'}"
        count = len(firing)
        return f"{self.title} ({count} firing signal{'s' if count != 1 else ''})"


class CorrelationState(BaseModel):
    """Everything the correlator remembers between events; empty with ``from_scratch()``."""

    model_config = _FROZEN

    groups: dict[str, IncidentGroup] = Field(default_factory=dict, description="By group key.")
    silences: dict[str, Silence] = Field(default_factory=dict)
    maintenance: dict[str, MaintenanceWindow] = Field(default_factory=dict)
    flaps: dict[str, tuple[datetime, ...]] = Field(
        default_factory=dict, description="Fingerprint -> times its status changed, within the flap window."
    )
    tombstones: dict[str, datetime] = Field(
        default_factory=dict, description="Recoveries seen before any firing: fingerprint -> observed_at."
    )
    duplicates: int = 0

    @classmethod
    def from_scratch(cls) -> CorrelationState:
        return cls()

    def for_storage(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> CorrelationState:
        return cls.model_validate(data)

    def active_groups(self) -> list[IncidentGroup]:
        return [g for g in self.groups.values() if g.active]

    def by_incident(self, incident_id: str) -> IncidentGroup | None:
        return next((g for g in self.groups.values() if g.incident_id == incident_id), None)

    def next_due(self) -> datetime | None:
        """When the actor should send the next ``Tick``: the earliest pending notification."""
        times = [g.due_at for g in self.groups.values() if g.pending is not None and g.due_at is not None]
        return min(times) if times else None


# --- topology -------------------------------------------------------------------------


@dataclass(frozen=True)
class PodFacts:
    node: str | None
    deployment: str | None


def pod_key(signal: Signal) -> str | None:
    """``namespace/pod`` for a signal about a pod (k8s object or Alertmanager ``pod`` label)."""
    namespace = signal.namespace or ""
    if signal.object is not None and signal.object.kind == "Pod":
        return f"{namespace}/{signal.object.name}"
    pod = signal.labels.get("pod")
    return f"{namespace}/{pod}" if pod else None


def owner_deployment(signal: Signal) -> str | None:
    """``namespace/deployment`` from the signal's own facts: its object, owner chain or label."""
    namespace = signal.namespace or ""
    if signal.object is not None and signal.object.kind == "Deployment":
        return f"{namespace}/{signal.object.name}"
    for owner in signal.owners:
        if owner.kind == "Deployment":
            return f"{owner.namespace or namespace}/{owner.name}"
    if signal.source is SignalSource.ALERTMANAGER and signal.labels.get("deployment"):
        return f"{namespace}/{signal.labels['deployment']}"
    return None


def owner_replicaset(signal: Signal) -> str | None:
    namespace = signal.namespace or ""
    for owner in signal.owners:
        if owner.kind == "ReplicaSet":
            return f"{owner.namespace or namespace}/{owner.name}"
    return None


def replicaset_of_pod_name(pod: str) -> str:
    """``ns/api-7d9f8-x2x1q`` -> ``ns/api-7d9f8`` (only ever used to look up a known ReplicaSet)."""
    head, _, _ = pod.rpartition("-")
    return head or pod


def node_down_of(signal: Signal, reasons: frozenset[str]) -> str | None:
    """The node a node-failure signal is about, or None when it is not one."""
    if signal.reason not in reasons and signal.labels.get("alertname", "") not in reasons:
        return None
    if signal.object is not None and signal.object.kind == "Node":
        return signal.object.name
    return signal.node or signal.labels.get("node") or None


def is_deployment_scoped(signal: Signal) -> bool:
    if signal.object is not None:
        return signal.object.kind in ("Deployment", "ReplicaSet")
    return bool(signal.labels.get("deployment")) and not signal.labels.get("pod")


class Topology:
    """What the k8s signals in state say about pods: node, ReplicaSet and Deployment."""

    def __init__(self) -> None:
        self.pods: dict[str, PodFacts] = {}
        self.replicasets: dict[str, str] = {}

    def learn(self, signal: Signal) -> bool:
        """Record a k8s pod signal's facts; True when it taught a new pod/ReplicaSet -> Deployment link."""
        if signal.source is not SignalSource.K8S:
            return False
        key = pod_key(signal)
        deployment = owner_deployment(signal)
        replicaset = owner_replicaset(signal)
        new = False
        if replicaset is not None and deployment is not None and self.replicasets.get(replicaset) != deployment:
            self.replicasets[replicaset] = deployment
            new = True
        if key is not None:
            known = self.pods.get(key)
            facts = PodFacts(node=signal.node or (known.node if known else None), deployment=deployment)
            if facts.deployment is None and known is not None:
                facts = PodFacts(node=facts.node, deployment=known.deployment)
            if known != facts:
                new = new or (facts.deployment is not None and (known is None or known.deployment is None))
                self.pods[key] = facts
        return new

    def learn_all(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self.learn(signal)

    def deployment_of(self, signal: Signal) -> str | None:
        own = owner_deployment(signal)
        if own is not None:
            return own
        key = pod_key(signal)
        if key is None:
            return None
        facts = self.pods.get(key)
        if facts is not None and facts.deployment is not None:
            return facts.deployment
        return self.replicasets.get(replicaset_of_pod_name(key))

    def node_of(self, signal: Signal) -> str | None:
        if signal.node:
            return signal.node
        key = pod_key(signal)
        facts = self.pods.get(key) if key is not None else None
        return facts.node if facts is not None else None


# --- incremental storage ----------------------------------------------------------------
#
# A storm group holds thousands of signals, and rewriting the whole state after every batch
# cost more than correlating it. So the state is stored in parts (a small meta record, one
# header per group, one record per signal, flap and tombstone) and each commit writes only
# the parts that changed. The correlator is copy-on-write: an unchanged group or signal is
# the same object in the old and new state, so ``is`` finds what changed without comparing.


@dataclass(frozen=True)
class PartsDelta:
    """Changed and removed entries of one keyed part (values are JSON text)."""

    changed: dict[str, str]
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.changed and not self.removed


@dataclass(frozen=True)
class StateDelta:
    """What to write so that the stored parts of ``old`` become those of ``new``."""

    meta: str | None
    groups: PartsDelta
    signals: dict[str, PartsDelta]
    dropped_groups: tuple[str, ...]
    flaps: PartsDelta
    tombstones: PartsDelta

    @property
    def empty(self) -> bool:
        return (
            self.meta is None
            and self.groups.empty
            and not self.signals
            and self.flaps.empty
            and self.tombstones.empty
        )


_META_FIELDS = {"silences", "maintenance", "duplicates"}


def _meta_json(state: CorrelationState) -> str:
    return state.model_dump_json(include=_META_FIELDS)


def _header_json(group: IncidentGroup) -> str:
    return group.model_dump_json(exclude={"signals"})


def _times_json(times: tuple[datetime, ...] | datetime) -> str:
    if isinstance(times, datetime):
        return json.dumps(times.isoformat())
    return json.dumps([t.isoformat() for t in times])


def _keyed_delta(old: dict[str, Any], new: dict[str, Any], encode: Any) -> PartsDelta:
    changed = {k: encode(v) for k, v in new.items() if (prev := old.get(k)) is not v and prev != v}
    removed = tuple(k for k in old if k not in new)
    return PartsDelta(changed, removed)


def storage_delta(old: CorrelationState | None, new: CorrelationState) -> StateDelta:
    """The parts of ``new`` that differ from ``old`` (everything when ``old`` is None)."""
    base = old if old is not None else CorrelationState.from_scratch()
    meta_changed = (
        old is None
        or base.silences != new.silences
        or base.maintenance != new.maintenance
        or base.duplicates != new.duplicates
    )
    headers: dict[str, str] = {}
    signals: dict[str, PartsDelta] = {}
    for key, group in new.groups.items():
        prev = base.groups.get(key)
        if prev is group:
            continue
        headers[key] = _header_json(group)
        before = prev.signals if prev is not None else {}
        delta = PartsDelta(
            {fp: t.model_dump_json() for fp, t in group.signals.items() if before.get(fp) is not t},
            tuple(fp for fp in before if fp not in group.signals),
        )
        if not delta.empty:
            signals[key] = delta
    dropped = tuple(k for k in base.groups if k not in new.groups)
    return StateDelta(
        meta=_meta_json(new) if meta_changed else None,
        groups=PartsDelta(headers, dropped),
        signals=signals,
        dropped_groups=dropped,
        flaps=_keyed_delta(base.flaps, new.flaps, _times_json),
        tombstones=_keyed_delta(base.tombstones, new.tombstones, _times_json),
    )


def state_from_parts(
    meta: str | None,
    headers: dict[str, str],
    signals: dict[str, dict[str, str]],
    flaps: dict[str, str],
    tombstones: dict[str, str],
) -> CorrelationState:
    """Rebuild (and validate) a state from the parts ``storage_delta`` wrote."""
    data: dict[str, Any] = json.loads(meta) if meta else {}
    groups: dict[str, Any] = {}
    for key, header in headers.items():
        group = json.loads(header)
        group["signals"] = {fp: json.loads(text) for fp, text in signals.get(key, {}).items()}
        groups[key] = group
    data["groups"] = groups
    data["flaps"] = {fp: json.loads(text) for fp, text in flaps.items()}
    data["tombstones"] = {fp: json.loads(text) for fp, text in tombstones.items()}
    return CorrelationState.model_validate(data)
