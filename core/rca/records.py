"""The values of an RCA: what is examined (``Subject``), within what bounds (``Budget``),
and what was gathered (``Evidence``).

``Evidence`` is frozen and self-contained: it crosses Ray process boundaries, goes to
storage and feeds both the deterministic diagnosis and the LLM prompt, so it holds
already-redacted, already-bounded data only (API objects without ``managedFields``,
log tails, event summaries) plus notes on what could not be gathered and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import ObjectRef, Signal, SignalSource
from core.rca.facts import EventFact, PodFacts, pod_facts
from core.rca.logs import LogSummary
from core.rca.rollout import RolloutChange

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Alertmanager label -> (kind, namespaced): which object an alert is about.
_LABEL_KINDS: tuple[tuple[str, str, bool], ...] = (
    ("pod", "Pod", True),
    ("deployment", "Deployment", True),
    ("statefulset", "StatefulSet", True),
    ("daemonset", "DaemonSet", True),
    ("job_name", "Job", True),
    ("persistentvolumeclaim", "PersistentVolumeClaim", True),
    ("node", "Node", False),
)


class Subject(BaseModel):
    """The incident an RCA explains: its reason, object, owner chain, node and alert labels."""

    model_config = _FROZEN

    reason: str
    object: ObjectRef | None = None
    owners: tuple[ObjectRef, ...] = Field(default=(), description="Nearest first: pod -> replicaset -> deployment.")
    node: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    source: SignalSource = SignalSource.K8S
    container: str | None = None
    message: str = ""

    @classmethod
    def from_signal(cls, signal: Signal) -> Subject:
        """A subject from a signal; an Alertmanager alert's object is read from its labels."""
        obj = signal.object or object_from_labels(signal.labels)
        return cls(
            reason=signal.reason,
            object=obj,
            owners=signal.owners,
            node=signal.node or signal.labels.get("node"),
            labels=dict(signal.labels),
            annotations=dict(signal.annotations),
            source=signal.source,
            container=signal.labels.get("container"),
            message=signal.message,
        )

    @property
    def namespace(self) -> str | None:
        if self.object is not None and self.object.namespace:
            return self.object.namespace
        return self.labels.get("namespace")

    def title(self) -> str:
        """``CrashLoopBackOff on api-7d9 (production)``."""
        if self.object is None:
            where = self.labels.get("alertname") or "the cluster"
            return f"{self.reason} on {where}"
        namespace = f" ({self.object.namespace})" if self.object.namespace else ""
        return f"{self.reason} on {self.object.name}{namespace}"


def object_from_labels(labels: Mapping[str, str]) -> ObjectRef | None:
    namespace = labels.get("namespace") or labels.get("exported_namespace")
    for label, kind, namespaced in _LABEL_KINDS:
        name = labels.get(label)
        if name and (namespace or not namespaced):
            return ObjectRef(kind=kind, name=name, namespace=namespace if namespaced else None)
    return None


@dataclass(frozen=True)
class Budget:
    """Bounds of one evidence plan: queries asked, bytes kept, log sizes, pods examined."""

    max_queries: int = 40
    max_bytes: int = 600_000
    log_tail_lines: int = 300
    max_log_bytes: int = 64_000
    analyze_bytes: int = 512_000
    analyze_lines: int = 5_000
    max_pods: int = 2
    max_containers: int = 2
    max_events: int = 30
    max_list_items: int = 50


class ObjectRecord(BaseModel):
    model_config = _FROZEN

    kind: str
    namespace: str | None
    name: str
    body: dict[str, Any] | None = None
    unavailable: str | None = None


class ListRecord(BaseModel):
    model_config = _FROZEN

    kind: str
    namespace: str | None
    selector: str | None
    items: tuple[dict[str, Any], ...] = ()
    unavailable: str | None = None


class LogRecord(BaseModel):
    model_config = _FROZEN

    namespace: str
    pod: str
    container: str
    previous: bool
    text: str = Field(default="", description="The redacted tail that was kept.")
    truncated: bool = False
    summary: LogSummary = Field(default_factory=LogSummary)
    unavailable: str | None = None

    def label(self) -> str:
        return f"{self.pod}/{self.container}{' (previous)' if self.previous else ''}"


class Evidence(BaseModel):
    """Everything one evidence plan gathered, redacted and bounded."""

    model_config = _FROZEN

    subject: Subject
    collected_at: datetime
    objects: tuple[ObjectRecord, ...] = ()
    lists: tuple[ListRecord, ...] = ()
    events: tuple[EventFact, ...] = ()
    logs: tuple[LogRecord, ...] = ()
    focus_pods: tuple[str, ...] = Field(default=(), description="Pods examined closely, worst first.")
    deployment: str | None = None
    rollout: RolloutChange | None = None
    notes: tuple[str, ...] = ()
    queries_used: int = 0
    bytes_kept: int = 0

    def get(self, kind: str, name: str | None) -> Mapping[str, Any] | None:
        for record in self.objects:
            if record.kind == kind and record.name == name and record.body is not None:
                return record.body
        return None

    def missing(self, kind: str, name: str | None) -> str | None:
        for record in self.objects:
            if record.kind == kind and record.name == name and record.unavailable is not None:
                return record.unavailable
        return None

    def listed(self, kind: str) -> tuple[dict[str, Any], ...]:
        found: list[dict[str, Any]] = []
        for record in self.lists:
            if record.kind == kind:
                found.extend(record.items)
        return tuple(found)

    def pods(self) -> tuple[PodFacts, ...]:
        """Facts of the focus pods, worst first (those that could be read)."""
        found: list[PodFacts] = []
        for name in self.focus_pods:
            facts = pod_facts(self.get("Pod", name) or _find(self.listed("Pod"), name))
            if facts is not None:
                found.append(facts)
        return tuple(found)

    def all_pods(self) -> tuple[PodFacts, ...]:
        """Every pod seen (focus pods and listed siblings), one per name."""
        seen: dict[str, PodFacts] = {}
        bodies = [record.body for record in self.objects if record.kind == "Pod" and record.body is not None]
        for body in (*bodies, *self.listed("Pod")):
            facts = pod_facts(body)
            if facts is not None:
                seen.setdefault(facts.name, facts)
        return tuple(seen.values())

    def events_of(self, kind: str | None = None, name: str | None = None) -> tuple[EventFact, ...]:
        return tuple(
            event
            for event in self.events
            if (kind is None or event.object_kind in (kind, "")) and (name is None or event.object_name == name)
        )

    def logs_of(self, pod: str, container: str | None = None) -> tuple[LogRecord, ...]:
        return tuple(
            record
            for record in self.logs
            if record.pod == pod and (container is None or record.container == container) and not record.unavailable
        )


def _find(bodies: tuple[dict[str, Any], ...], name: str) -> dict[str, Any] | None:
    for body in bodies:
        metadata = body.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get("name") == name:
            return body
    return None
