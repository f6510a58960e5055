"""Correlation: many signals in, one incident per problem out, notified once.

A node failure is one NodeNotReady and dozens of pod and Alertmanager signals; a bad
rollout is twenty crash-looping pods and a replicas-mismatch alert. An on-call engineer
wants one incident for each, so a signal joins an existing incident, in this order:

1. its fingerprint's incident (same condition: a duplicate, a recurrence or a recovery);
2. a rule's inhibit clause (a critical NodeNotReady mutes pods on that node: they join
   the node's incident as *affected*, without a notification of their own);
3. topology: a node-down signal joins its node's incident; a pod signal joins the
   incident of its failed node, else of its pod, else of its Deployment; any signal
   joins an incident about its object (so k8s and Alertmanager signals about the same
   object are one incident);
4. the rule's ``group_key`` (active, or resolved less than ``cooldown`` ago: reopened);
5. otherwise it opens a new incident.

When a node incident opens, firing pod signals of that node already in other incidents
move into it; when a k8s signal first reveals a pod's Deployment, incidents made only of
that Deployment's pods merge into its incident. Emptied incidents resolve as ``merged``.

Lifecycle: open -> acknowledged -> resolved when every signal recovered (an Alertmanager
``resolved`` or a k8s recovery). A recovery older than the latest firing is ignored, and
a firing not newer than a known recovery is stale. A recurrence within ``cooldown``
reopens the incident; later, it opens a new one.

Notifications wait ``group_wait`` (``NotifyDue`` + ``Tick``), so the first one already
counts the whole storm. They are suppressed when every signal they are about is
silenced, in maintenance or **flapping**: a fingerprint whose status changed more than
``flap_threshold`` times (default 4) within ``flap_window`` (default 10 minutes) flaps
until its changes within the window drop back to the threshold.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.correlation_events import (
    Acknowledge,
    AcknowledgeIncident,
    AddMaintenance,
    AddSilence,
    AttachSignal,
    Effect,
    EscalateIncident,
    Event,
    Notify,
    NotifyDue,
    OpenIncident,
    RemoveMaintenance,
    RemoveSilence,
    ReopenIncident,
    ResolveIncident,
    ResolveReason,
    SignalEvent,
    Suppressed,
    SuppressReason,
    Tick,
)
from core.correlation_index import (
    TOPOLOGY_KINDS,
    CorrelationPolicy,
    Index,
    WorkingState,
    incident_title,
)
from core.errors import NotFound
from core.incident_groups import (
    CorrelationState,
    IncidentGroup,
    NotifyKind,
    TrackedSignal,
    node_down_of,
    pod_key,
)
from core.models import IncidentId, IncidentStatus, ObjectRef, Severity, Signal, fingerprint_of
from core.rules import Decision, RuleSet
from core.silences import active_maintenance, active_silence


@dataclass(frozen=True)
class Correlator:
    """Pure transitions over ``CorrelationState``; holds configuration and one memo.

    The memo keeps the lookup indexes of the last state this correlator produced (by weak
    reference), so advancing that state again costs O(changes) instead of a rebuild; any
    other state (restored from storage, or an older one) is indexed from scratch with
    the same result.
    """

    rules: RuleSet = field(default_factory=RuleSet)
    policy: CorrelationPolicy = field(default_factory=CorrelationPolicy)
    _memo: list[tuple[weakref.ref[CorrelationState], Index]] = field(default_factory=list, compare=False, repr=False)

    def event(self, signal: Signal) -> SignalEvent:
        """The ``SignalEvent`` for ``signal`` under these rules."""
        return SignalEvent(signal, self.rules.evaluate(signal))

    def advance(
        self, state: CorrelationState, event: Event, now: datetime
    ) -> tuple[CorrelationState, tuple[Effect, ...]]:
        return self.advance_all(state, (event,), now)

    def advance_all(
        self, state: CorrelationState, events: Iterable[Event], now: datetime
    ) -> tuple[CorrelationState, tuple[Effect, ...]]:
        """Apply events in order at ``now``; one state load for the whole batch."""
        index = None
        if self._memo:
            ref, memo = self._memo.pop()
            index = memo if ref() is state else None
        work = _Work(self.rules, self.policy, state, now, index)
        for event in events:
            work.apply(event)
        work.flush()
        new = work.freeze()
        self._memo.append((weakref.ref(new), work.index))
        return new, tuple(work.effects)


class _Work(WorkingState):
    """The transitions, applied to a working copy of the state."""

    # --- events ----------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if isinstance(event, SignalEvent):
            self._signal(event.signal, event.decision)
        elif isinstance(event, Acknowledge):
            self._acknowledge(event)
        elif isinstance(event, Tick):
            self.ticked = True
            self._prune_history()
        elif isinstance(event, AddSilence):
            self.silences[event.silence.id] = event.silence
        elif isinstance(event, RemoveSilence):
            if self.silences.pop(event.silence_id, None) is None:
                raise NotFound(f"no active silence {event.silence_id!r}")
        elif isinstance(event, AddMaintenance):
            self.maintenance[event.window.id] = event.window
        elif isinstance(event, RemoveMaintenance) and self.maintenance.pop(event.window_id, None) is None:
            raise NotFound(f"no active maintenance window {event.window_id!r}")

    def _acknowledge(self, event: Acknowledge) -> None:
        key = next((k for k, g in self.groups.items() if g.incident_id == event.incident_id), None)
        if key is None:
            raise NotFound(f"no incident {event.incident_id!r} in the correlator")
        group = self.groups[key]
        if group.status is not IncidentStatus.OPEN:
            return
        self.groups[key] = group.model_copy(
            update={
                "status": IncidentStatus.ACKNOWLEDGED,
                "acknowledged_by": event.who,
                "acknowledged_at": self.now,
                "updated_at": self.now,
            }
        )
        self.effects.append(AcknowledgeIncident(group.incident_id, key, event.who))

    def _suppress(self, reason: SuppressReason, signal: Signal, key: str | None = None, detail: str = "") -> None:
        incident = self.groups[key].incident_id if key is not None and key in self.groups else None
        self.effects.append(Suppressed(reason, signal.fingerprint, incident, detail))

    def _signal(self, signal: Signal, decision: Decision) -> None:
        fp = signal.fingerprint
        if decision.drop:
            self._suppress(SuppressReason.DROPPED, signal, detail=decision.rule_name)
            return
        key = self.fps.get(fp)
        group = self.groups.get(key) if key is not None else None
        tracked = group.signals.get(fp) if group is not None else None
        if not signal.firing:
            self._recovery(signal, key if group is not None else None, tracked)
            return
        if tracked is not None and tracked.resolved_at is not None and signal.observed_at <= tracked.resolved_at:
            self._suppress(SuppressReason.STALE, signal, key, "firing not newer than its recovery")
            return
        tombstone = self.tombstones.get(fp)
        if tombstone is not None and signal.observed_at <= tombstone and self._remembered(tombstone):
            self._suppress(SuppressReason.STALE, signal, None, "firing not newer than its recovery")
            return
        if group is not None and key is not None and tracked is not None and tracked.firing:
            self._repeat(key, tracked, signal, decision)
            return
        if self._muted(signal):
            return
        learned = self.topology.learn(signal)
        if group is not None and key is not None and tracked is not None:
            self._recur(key, tracked, signal, decision)
        else:
            self._place(signal, decision)
        if learned:
            self._merge_deployment(signal)

    def _muted(self, signal: Signal) -> bool:
        window = active_maintenance(signal.namespace, self.maintenance.values(), self.now)
        if window is not None:
            self._suppress(SuppressReason.MAINTENANCE, signal, detail=window.id)
            return True
        silence = active_silence(signal.all_labels(), self.silences.values(), self.now)
        if silence is not None:
            self._suppress(SuppressReason.SILENCE, signal, detail=silence.id)
            return True
        return False

    def _place(self, signal: Signal, decision: Decision) -> None:
        inhibited = self._inhibitor(signal)
        if inhibited is not None:
            key, rule = inhibited
            self._join(key, signal, decision, affected=True)
            self._suppress(SuppressReason.INHIBIT, signal, key, rule)
            return
        routed = self._route(signal)
        if routed is not None:
            self._join(routed[0], signal, decision, affected=routed[1])
            return
        key = decision.group_key
        existing = self.groups.get(key)
        if existing is None:
            self._open(signal, decision)
        elif existing.active:
            self._join(key, signal, decision, affected=False)
        else:
            self._put(key, existing, self._tracked(signal, decision, affected=False))
            self._reopen(key, signal)
            self._escalate(key, decision.severity)
            down = node_down_of(signal, self.policy.node_down_reasons)
            if down is not None and self.groups[key].node == down:
                self._absorb_node(key, down)

    # --- transitions -----------------------------------------------------------------

    def _tracked(self, signal: Signal, decision: Decision, affected: bool) -> TrackedSignal:
        labels = signal.all_labels()
        inhibitor = any(rule.inhibit and rule.match.matches(signal, labels) for rule in self.rules.rules)
        return TrackedSignal(
            signal=signal,
            severity=decision.severity,
            rule=decision.rule_name,
            firing_at=signal.observed_at,
            affected=affected,
            inhibitor=inhibitor,
        )

    def _put(self, key: str, group: IncidentGroup, tracked: TrackedSignal) -> IncidentGroup:
        signals = self._own_signals(key, group)
        signals[tracked.signal.fingerprint] = tracked
        group = group.model_copy(update={"signals": signals, "updated_at": self.now})
        self.groups[key] = group
        self.fps[tracked.signal.fingerprint] = key
        if group.active and tracked.firing:
            self._index(key, group, tracked)
        return group

    def _open(self, signal: Signal, decision: Decision) -> None:
        key = decision.group_key
        down = node_down_of(signal, self.policy.node_down_reasons)
        deployment = self.topology.deployment_of(signal)
        if down is not None:
            anchor: ObjectRef | None = ObjectRef(kind="Node", name=down)
            title = f"node {down} is NotReady"
        elif deployment is not None:
            namespace, _, name = deployment.partition("/")
            anchor = ObjectRef(kind="Deployment", namespace=namespace or None, name=name)
            title = incident_title(signal)
        else:
            anchor = signal.object
            title = incident_title(signal)
        incident = IncidentId("inc-" + fingerprint_of(key, self.now.isoformat(), signal.fingerprint)[:10])
        group = IncidentGroup(
            incident_id=incident,
            group_key=key,
            rule=decision.rule_name,
            severity=decision.severity,
            title=title,
            playbook=decision.playbook,
            routes=decision.notify,
            namespace=signal.namespace,
            anchor=anchor,
            opened_at=self.now,
            updated_at=self.now,
            group_wait=decision.rule.group_wait,
            cooldown=decision.rule.cooldown,
            pending=NotifyKind.NEW,
            due_at=self.now + timedelta(seconds=decision.rule.group_wait),
        )
        self.groups[key] = group
        if anchor is not None:
            self.objects[anchor.key()] = key
        self.effects.append(
            OpenIncident(
                incident_id=incident,
                group_key=key,
                rule=decision.rule_name,
                severity=decision.severity,
                title=title,
                playbook=decision.playbook,
                namespace=signal.namespace,
                object=anchor,
                signal=signal,
                labels=dict(signal.labels),
            )
        )
        self._put(key, group, self._tracked(signal, decision, affected=False))
        self.scheduled.add(key)
        if down is not None:
            self._absorb_node(key, down)

    def _join(self, key: str, signal: Signal, decision: Decision, affected: bool) -> None:
        group = self.groups[key]
        updates: dict[str, object] = {}
        if group.playbook is None and decision.playbook is not None and not affected:
            updates["playbook"] = decision.playbook
        routes = group.routes + tuple(r for r in decision.notify if r not in group.routes)
        if routes != group.routes:
            updates["routes"] = routes
        if updates:
            group = group.model_copy(update=updates)
        self._put(key, group, self._tracked(signal, decision, affected))
        self.effects.append(AttachSignal(group.incident_id, key, signal, affected=affected))
        if not affected:
            self._escalate(key, decision.severity)

    def _escalate(self, key: str, severity: Severity) -> None:
        group = self.groups[key]
        if severity.rank <= group.severity.rank or not group.active:
            return
        updates: dict[str, object] = {"severity": severity}
        if group.notified and group.pending is None:
            updates.update(pending=NotifyKind.ESCALATED, due_at=self.now)
            self.scheduled.add(key)
        self.groups[key] = group.model_copy(update=updates)
        self.effects.append(EscalateIncident(group.incident_id, key, group.severity, severity))

    def _repeat(self, key: str, tracked: TrackedSignal, signal: Signal, decision: Decision) -> None:
        group = self.groups[key]
        newer = tracked.firing_at is None or signal.observed_at > tracked.firing_at
        updated = tracked.model_copy(
            update={
                "seen": tracked.seen + 1,
                "signal": signal if newer else tracked.signal,
                "firing_at": signal.observed_at if newer else tracked.firing_at,
                "severity": max(tracked.severity, decision.severity, key=lambda s: s.rank),
            }
        )
        worse = decision.severity.rank > tracked.severity.rank
        if not worse:
            group = group.model_copy(update={"duplicates": group.duplicates + 1})
            self.duplicates += 1
        self._put(key, group, updated)
        if worse:
            self.effects.append(AttachSignal(group.incident_id, key, signal, affected=tracked.affected))
            if not tracked.affected:
                self._escalate(key, decision.severity)
        else:
            self._suppress(SuppressReason.DUPLICATE, signal, key)

    def _flap(self, fingerprint: str) -> None:
        self.flaps[fingerprint] = (*self.flaps.get(fingerprint, ()), self.now)

    def _recur(self, key: str, tracked: TrackedSignal, signal: Signal, decision: Decision) -> None:
        self._flap(signal.fingerprint)
        group = self.groups[key]
        updated = tracked.model_copy(
            update={
                "signal": signal,
                "firing_at": signal.observed_at,
                "seen": tracked.seen + 1,
                "severity": decision.severity,
            }
        )
        self._put(key, group, updated)
        if group.active:
            self.effects.append(AttachSignal(group.incident_id, key, signal, affected=tracked.affected))
            if not tracked.affected:
                self._escalate(key, decision.severity)
        else:
            self._reopen(key, signal)

    def _reopen(self, key: str, signal: Signal) -> None:
        group = self.groups[key]
        if group.notified:
            pending, due = NotifyKind.REOPENED, self.now
        else:
            pending, due = NotifyKind.NEW, max(self.now, group.opened_at + timedelta(seconds=group.group_wait))
        group = group.model_copy(
            update={
                "status": IncidentStatus.OPEN,
                "resolved_at": None,
                "acknowledged_by": None,
                "acknowledged_at": None,
                "reopened": group.reopened + 1,
                "pending": pending,
                "due_at": due,
                "updated_at": self.now,
            }
        )
        self.groups[key] = group
        if group.anchor is not None:
            self._claim(self.objects, group.anchor.key(), key)
        for tracked in group.firing():
            self._index(key, group, tracked)
        self.scheduled.add(key)
        self.effects.append(ReopenIncident(group.incident_id, key, signal))

    def _recovery(self, signal: Signal, key: str | None, tracked: TrackedSignal | None) -> None:
        fp = signal.fingerprint
        if key is None or tracked is None:
            self.tombstones[fp] = max(signal.observed_at, self.tombstones.get(fp, signal.observed_at))
            self._suppress(SuppressReason.STALE, signal, None, "recovery of an unknown or expired firing")
            return
        if tracked.firing_at is not None and signal.observed_at < tracked.firing_at:
            self._suppress(SuppressReason.STALE, signal, key, "recovery older than the latest firing")
            return
        group = self.groups[key]
        if not tracked.firing:
            latest = max(signal.observed_at, tracked.resolved_at or signal.observed_at)
            self._put(key, group, tracked.model_copy(update={"resolved_at": latest, "seen": tracked.seen + 1}))
            self.duplicates += 1
            self._suppress(SuppressReason.DUPLICATE, signal, key)
            return
        self._flap(fp)
        group = self._put(key, group, tracked.model_copy(update={"resolved_at": signal.observed_at}))
        self.effects.append(AttachSignal(group.incident_id, key, signal, affected=tracked.affected))
        if group.active and not group.firing():
            self._resolve(key, ResolveReason.RECOVERED)

    def _resolve(self, key: str, reason: ResolveReason, merged_into: IncidentId | None = None) -> None:
        group = self.groups[key]
        notify = reason is ResolveReason.RECOVERED and group.notified
        self.groups[key] = group.model_copy(
            update={
                "status": IncidentStatus.RESOLVED,
                "resolved_at": self.now,
                "updated_at": self.now,
                "pending": NotifyKind.RESOLVED if notify else None,
                "due_at": self.now if notify else None,
            }
        )
        if notify:
            self.scheduled.add(key)
        self.effects.append(ResolveIncident(group.incident_id, key, reason, merged_into))

    def _move(self, source_key: str, target_key: str, moving: Sequence[TrackedSignal], affected: bool) -> None:
        source = self.groups[source_key]
        target = self.groups[target_key]
        gone = {t.signal.fingerprint for t in moving}
        kept = {fp: t for fp, t in source.signals.items() if fp not in gone}
        self.owned_signals[source_key] = kept
        self.groups[source_key] = source.model_copy(update={"signals": kept})
        for tracked in moving:
            target = self._put(target_key, target, tracked.model_copy(update={"affected": affected}))
            self.effects.append(
                AttachSignal(
                    target.incident_id, target_key, tracked.signal, affected=affected, moved_from=source.incident_id
                )
            )
        if not affected:
            for tracked in moving:
                if tracked.firing:
                    self._escalate(target_key, tracked.severity)
        if self.groups[source_key].active and not self.groups[source_key].firing():
            self._resolve(source_key, ResolveReason.MERGED, target.incident_id)

    def _absorb_node(self, node_key: str, node: str) -> None:
        """A node incident opened: firing pod signals on that node elsewhere move into it."""
        for key, group in sorted(self.groups.items()):
            if key == node_key or not group.active or group.node is not None:
                continue
            moving = [
                t for t in group.firing() if pod_key(t.signal) is not None and self.topology.node_of(t.signal) == node
            ]
            if moving:
                self._move(key, node_key, moving, affected=True)

    def _merge_deployment(self, signal: Signal) -> None:
        """A k8s signal revealed a pod's Deployment: incidents made only of its pods merge into one."""
        deployment = self.topology.deployment_of(signal)
        home = self.fps.get(signal.fingerprint)
        if deployment is None or home is None or self.groups[home].node is not None:
            return
        target = self._active(self.objects, "Deployment/" + deployment) or home
        anchor = self.groups[target].anchor
        if anchor is None or anchor.kind == "Pod":
            namespace, _, name = deployment.partition("/")
            ref = ObjectRef(kind="Deployment", namespace=namespace or None, name=name)
            self.groups[target] = self.groups[target].model_copy(update={"anchor": ref})
            self._claim(self.objects, ref.key(), target)
        candidates = [
            key
            for key, group in self.groups.items()
            if key != target and group.active and (group.anchor is None or group.anchor.kind not in TOPOLOGY_KINDS)
        ]
        for key in sorted(candidates):
            group = self.groups[key]
            firing = group.firing()
            if firing and all(self.topology.deployment_of(t.signal) == deployment for t in firing):
                self._move(key, target, list(group.signals.values()), affected=False)

    # --- notifications ---------------------------------------------------------------

    def flush(self) -> None:
        keys = sorted(self.groups) if self.ticked else sorted(self.scheduled)
        for key in keys:
            group = self.groups.get(key)
            if group is None or group.pending is None or group.due_at is None:
                continue
            if group.due_at > self.now:
                if key in self.scheduled:
                    self.effects.append(NotifyDue(group.incident_id, key, group.due_at))
                continue
            self._notify(key, group)

    def _notify(self, key: str, group: IncidentGroup) -> None:
        kind = group.pending
        assert kind is not None  # noqa: S101 - checked by the caller
        about = list(group.signals.values()) if kind is NotifyKind.RESOLVED else group.firing()
        about = [t for t in about if not t.affected] or about
        muted = self._mute_reason(about)
        notified = group.notified or kind in (NotifyKind.NEW, NotifyKind.REOPENED)
        self.groups[key] = group.model_copy(
            update={"pending": None, "due_at": None, "notified": notified if muted is None else group.notified}
        )
        if muted is not None:
            self.effects.append(Suppressed(muted, None, group.incident_id, f"{kind.value} notification"))
            return
        self.effects.append(
            Notify(
                kind, group.incident_id, key, group.severity, group.title, group.summary(), group.playbook, group.routes
            )
        )

    def _mute_reason(self, about: Sequence[TrackedSignal]) -> SuppressReason | None:
        if not about:
            return None
        if all(self.flapping(t.signal.fingerprint) for t in about):
            return SuppressReason.FLAPPING
        if all(active_silence(t.signal.all_labels(), self.silences.values(), self.now) for t in about):
            return SuppressReason.SILENCE
        windows = self.maintenance.values()
        if all(active_maintenance(t.signal.namespace, windows, self.now) for t in about):
            return SuppressReason.MAINTENANCE
        return None


__all__ = [
    "Acknowledge",
    "AcknowledgeIncident",
    "AddMaintenance",
    "AddSilence",
    "AttachSignal",
    "CorrelationPolicy",
    "CorrelationState",
    "Correlator",
    "Effect",
    "EscalateIncident",
    "Event",
    "Notify",
    "NotifyDue",
    "NotifyKind",
    "OpenIncident",
    "RemoveMaintenance",
    "RemoveSilence",
    "ReopenIncident",
    "ResolveIncident",
    "ResolveReason",
    "SignalEvent",
    "SuppressReason",
    "Suppressed",
    "Tick",
    "incident_title",
]
