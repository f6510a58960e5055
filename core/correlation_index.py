"""The correlator's working copy of its state, and the lookups topology routing needs.

``advance_all`` turns the frozen ``CorrelationState`` into a ``WorkingState`` (plain dicts
plus indexes: fingerprint -> group, object -> group, pod -> node/Deployment), applies the
events, and freezes the result. Building the indexes costs O(signals); ``Correlator``
memoises them for the last state it produced, so a stream of single-signal advances
costs O(changes), and a state restored from storage is indexed from scratch with the
same answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.correlation_events import Effect
from core.incident_groups import (
    CorrelationState,
    IncidentGroup,
    Topology,
    TrackedSignal,
    is_deployment_scoped,
    node_down_of,
    pod_key,
)
from core.models import Signal
from core.rules import RuleSet

NODE_DOWN_REASONS = frozenset({"NodeNotReady", "KubeNodeNotReady", "KubeNodeUnreachable"})
TOPOLOGY_KINDS = frozenset({"Node", "Deployment"})


@dataclass(frozen=True)
class CorrelationPolicy:
    """Thresholds: a fingerprint flaps after more than ``flap_threshold`` status changes within
    ``flap_window`` seconds; a recovery seen before its firing is remembered ``stale_window`` seconds."""

    flap_window: float = 600.0
    flap_threshold: int = 4
    stale_window: float = 3600.0
    node_down_reasons: frozenset[str] = field(default=NODE_DOWN_REASONS)


def incident_title(signal: Signal) -> str:
    subject = signal.object.key() if signal.object else (signal.labels.get("instance") or "cluster")
    text = f"{signal.reason} on {subject}"
    summary = signal.annotations.get("summary")
    return f"{text}: {summary}"[:300] if summary else text


@dataclass
class Index:
    """Lookups derived from a state; rebuilt in O(signals), then kept up to date per event."""

    fps: dict[str, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)
    node_deployments: dict[str, str] = field(default_factory=dict)
    inhibitors: dict[str, str] = field(default_factory=dict)
    topology: Topology = field(default_factory=Topology)


class WorkingState:
    """Mutable for the length of one ``advance_all``; ``freeze()`` makes the next state."""

    def __init__(
        self, rules: RuleSet, policy: CorrelationPolicy, state: CorrelationState, now: datetime, index: Index | None
    ) -> None:
        self.rules = rules
        self.policy = policy
        self.now = now
        self.groups = dict(state.groups)
        self.silences = {k: s for k, s in state.silences.items() if not s.expired(now)}
        self.maintenance = {k: w for k, w in state.maintenance.items() if not w.expired(now)}
        self.flaps = dict(state.flaps)
        self.tombstones = dict(state.tombstones)
        self.duplicates = state.duplicates
        self.effects: list[Effect] = []
        self.scheduled: set[str] = set()
        # Signal dicts created during this batch, by group key: only these may change in place.
        # Copying a storm group's dict for every signal made a batch quadratic in its size.
        self.owned_signals: dict[str, dict[str, TrackedSignal]] = {}
        self.ticked = False
        for key, group in list(self.groups.items()):
            expired = group.resolved_at is not None and now - group.resolved_at > timedelta(seconds=group.cooldown)
            if expired and not group.active:
                del self.groups[key]
                index = None
        if index is not None:
            self._use(index)
        else:
            self._build()

    def _use(self, index: Index) -> None:
        self.index = index
        self.fps = index.fps
        self.objects = index.objects
        self.node_deployments = index.node_deployments
        self.inhibitors = index.inhibitors
        self.topology = index.topology

    def _build(self) -> None:
        index = Index()
        self._use(index)
        for key, group in self.groups.items():
            if group.active and group.anchor is not None:
                index.objects[group.anchor.key()] = key
        for key, group in self.groups.items():
            for fp, tracked in group.signals.items():
                index.fps[fp] = key
                index.topology.learn(tracked.signal)
                if group.active and tracked.firing:
                    self._index(key, group, tracked)

    def _prune_history(self) -> None:
        """On ``Tick``: forget status changes older than the flap window and old orphan recoveries."""
        horizon = self.now - timedelta(seconds=self.policy.flap_window)
        self.flaps = {fp: kept for fp, times in self.flaps.items() if (kept := tuple(t for t in times if t > horizon))}
        stale_horizon = self.now - timedelta(seconds=self.policy.stale_window)
        self.tombstones = {fp: at for fp, at in self.tombstones.items() if at > stale_horizon}

    # --- indexes ---------------------------------------------------------------------

    def _claim(self, index: dict[str, str], name: str, key: str, overwrite: bool = False) -> None:
        current = self.groups.get(index.get(name, ""))
        if overwrite or current is None or not current.active:
            index[name] = key

    def _index(self, key: str, group: IncidentGroup, tracked: TrackedSignal) -> None:
        signal = tracked.signal
        node_group = group.node is not None
        pod = pod_key(signal)
        if pod is not None:
            self._claim(self.objects, "Pod/" + pod, key, overwrite=node_group)
        if signal.object is not None:
            self._claim(self.objects, signal.object.key(), key, overwrite=node_group and signal.object.kind == "Node")
        deployment = self.topology.deployment_of(signal)
        if deployment is not None:
            if node_group:
                self._claim(self.node_deployments, deployment, key)
            else:
                self._claim(self.objects, "Deployment/" + deployment, key)
        if tracked.inhibitor:
            self.inhibitors[signal.fingerprint] = key

    def _active(self, index: dict[str, str], name: str) -> str | None:
        key = index.get(name)
        group = self.groups.get(key) if key is not None else None
        return key if group is not None and group.active else None

    def _remembered(self, tombstone: datetime) -> bool:
        return self.now - tombstone < timedelta(seconds=self.policy.stale_window)

    def _inhibitor(self, signal: Signal) -> tuple[str, str] | None:
        for fp, key in sorted(self.inhibitors.items()):
            group = self.groups.get(key)
            source = group.signals.get(fp) if group is not None and group.active else None
            if source is None or not source.firing:
                continue
            rule = self.rules.inhibited(signal, (source.signal,))
            if rule is not None:
                return key, rule
        return None

    def _route(self, signal: Signal) -> tuple[str, bool] | None:
        """Topology: (group key, affected) of the incident this signal belongs to, if any."""
        down = node_down_of(signal, self.policy.node_down_reasons)
        if down is not None:
            found = self._active(self.objects, f"Node//{down}")
            return (found, False) if found is not None else None
        pod = pod_key(signal)
        node = self.topology.node_of(signal)
        if pod is not None and node is not None and (found := self._active(self.objects, f"Node//{node}")):
            return found, True
        if pod is not None and (found := self._active(self.objects, "Pod/" + pod)):
            return found, self.groups[found].node is not None
        deployment = self.topology.deployment_of(signal)
        if deployment is not None:
            if found := self._active(self.objects, "Deployment/" + deployment):
                return found, False
            if is_deployment_scoped(signal) and (found := self._active(self.node_deployments, deployment)):
                return found, True
        if signal.object is not None and (found := self._active(self.objects, signal.object.key())):
            return found, False
        return None

    def flapping(self, fingerprint: str) -> bool:
        horizon = self.now - timedelta(seconds=self.policy.flap_window)
        recent = sum(1 for t in self.flaps.get(fingerprint, ()) if t > horizon)
        return recent > self.policy.flap_threshold

    def _own_signals(self, key: str, group: IncidentGroup) -> dict[str, TrackedSignal]:
        """The group's signal dict, copied once per batch (the previous state keeps its own)."""
        owned = self.owned_signals.get(key)
        if owned is None or owned is not group.signals:
            owned = dict(group.signals)
            self.owned_signals[key] = owned
        return owned

    def freeze(self) -> CorrelationState:
        return CorrelationState.model_construct(
            groups=self.groups,
            silences=self.silences,
            maintenance=self.maintenance,
            flaps=self.flaps,
            tombstones=self.tombstones,
            duplicates=self.duplicates,
        )
