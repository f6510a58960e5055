"""Typed facts read from untrusted pod, node and event JSON.

Both the evidence plan (which containers' logs to fetch, which pod is the worst) and
the signatures (what the last termination was, what the liveness probe allows) read
the same few fields. Reading them once, here, through the never-raising helpers of
``core.detectors.objects`` keeps the signatures short and keeps odd API objects
(missing fields, ``null``, wrong types) from ever raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.detectors.events import event_time
from core.detectors.objects import (
    conditions,
    integer,
    items,
    labels_of,
    mapping,
    name_of,
    namespace_of,
    sub,
    text,
    timestamp,
)

MAX_MESSAGE = 400


def short(value: Any, limit: int = MAX_MESSAGE) -> str:
    """A one-line form of a free-text value, cut to ``limit``."""
    raw = text(value) or ""
    line = " ".join(raw[: limit * 2].split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Termination:
    reason: str
    exit_code: int | None
    message: str
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def run_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Probe:
    initial_delay: int
    period: int
    failure_threshold: int
    timeout: int

    @property
    def earliest_kill_seconds(self) -> int:
        """How long a container that never passes this probe lives: delay + period x threshold."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    init: bool
    image: str | None
    restart_count: int
    ready: bool | None
    waiting_reason: str | None
    waiting_message: str
    running_since: datetime | None
    terminated: Termination | None
    last_terminated: Termination | None
    limits: Mapping[str, str]
    requests: Mapping[str, str]
    liveness: Probe | None
    readiness: Probe | None
    startup: Probe | None

    @property
    def has_run(self) -> bool:
        """Whether the container ever started, so it has a current log."""
        return self.running_since is not None or self.terminated is not None

    @property
    def latest_termination(self) -> Termination | None:
        return self.terminated or self.last_terminated

    @property
    def failing(self) -> bool:
        term = self.latest_termination
        return (
            self.waiting_reason not in (None, "ContainerCreating", "PodInitializing")
            or (term is not None and (term.exit_code or 0) != 0)
            or self.restart_count > 0
            or self.ready is False
        )


@dataclass(frozen=True)
class PodFacts:
    name: str
    namespace: str | None
    phase: str | None
    reason: str | None
    message: str
    node: str | None
    start_time: datetime | None
    created_at: datetime | None
    labels: Mapping[str, str]
    containers: tuple[ContainerFacts, ...]
    conditions: Mapping[str, Mapping[str, Any]]
    owners: tuple[tuple[str, str], ...]
    claims: tuple[str, ...]
    config_refs: tuple[tuple[str, str], ...] = field(default=())

    def container(self, name: str | None) -> ContainerFacts | None:
        for item in self.containers:
            if item.name == name:
                return item
        return None

    @property
    def template_hash(self) -> str | None:
        return self.labels.get("pod-template-hash")

    @property
    def unschedulable_message(self) -> str | None:
        scheduled = self.conditions.get("PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            return short(scheduled.get("message")) or short(scheduled.get("reason"))
        return None

    @property
    def healthy(self) -> bool:
        ready = self.conditions.get("Ready")
        return (
            self.phase == "Running"
            and ready is not None
            and ready.get("status") == "True"
            and all(item.restart_count == 0 or item.ready for item in self.containers)
        )

    def badness(self) -> int:
        """How bad a pod looks, to pick which pods of a workload to examine first."""
        score = 0
        if self.reason in ("Evicted", "NodeLost", "UnexpectedAdmissionError"):
            score += 4
        if self.unschedulable_message:
            score += 4
        if self.phase == "Failed":
            score += 3
        for item in self.containers:
            if item.waiting_reason not in (None, "ContainerCreating", "PodInitializing"):
                score += 4
            term = item.latest_termination
            if term is not None and (term.exit_code or 0) != 0:
                score += 2
            score += min(item.restart_count, 5)
            if item.ready is False:
                score += 1
        return score


def _termination(value: Any) -> Termination | None:
    term = mapping(value)
    if not term:
        return None
    return Termination(
        reason=text(term.get("reason")) or "",
        exit_code=integer(term.get("exitCode")),
        message=short(term.get("message")),
        started_at=timestamp(term.get("startedAt")),
        finished_at=timestamp(term.get("finishedAt")),
    )


def _probe(value: Any) -> Probe | None:
    probe = mapping(value)
    if not probe:
        return None
    return Probe(
        initial_delay=max(integer(probe.get("initialDelaySeconds")) or 0, 0),
        period=max(integer(probe.get("periodSeconds")) or 10, 1),
        failure_threshold=max(integer(probe.get("failureThreshold")) or 3, 1),
        timeout=max(integer(probe.get("timeoutSeconds")) or 1, 1),
    )


def _strings(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in mapping(value).items() if isinstance(item, str | int | float)}


def _containers(pod: Mapping[str, Any]) -> tuple[ContainerFacts, ...]:
    spec, status = sub(pod, "spec"), sub(pod, "status")
    found: list[ContainerFacts] = []
    for spec_key, status_key, init in (
        ("initContainers", "initContainerStatuses", True),
        ("containers", "containerStatuses", False),
    ):
        statuses = {text(item.get("name")): item for item in items(status.get(status_key))}
        for container in items(spec.get(spec_key)):
            name = text(container.get("name"))
            if name is None:
                continue
            state_of = mapping(statuses.get(name))
            state = sub(state_of, "state")
            ready = state_of.get("ready")
            found.append(
                ContainerFacts(
                    name=name,
                    init=init,
                    image=text(container.get("image")),
                    restart_count=max(integer(state_of.get("restartCount")) or 0, 0),
                    ready=ready if isinstance(ready, bool) else None,
                    waiting_reason=text(sub(state, "waiting").get("reason")),
                    waiting_message=short(sub(state, "waiting").get("message")),
                    running_since=timestamp(sub(state, "running").get("startedAt")) if "running" in state else None,
                    terminated=_termination(state.get("terminated")),
                    last_terminated=_termination(sub(state_of, "lastState").get("terminated")),
                    limits=_strings(sub(container, "resources", "limits")),
                    requests=_strings(sub(container, "resources", "requests")),
                    liveness=_probe(container.get("livenessProbe")),
                    readiness=_probe(container.get("readinessProbe")),
                    startup=_probe(container.get("startupProbe")),
                )
            )
    return tuple(found)


def _config_refs(pod: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(kind, name) of ConfigMaps and Secrets the pod references, in spec order."""
    refs: list[tuple[str, str]] = []
    spec = sub(pod, "spec")
    for container in (*items(spec.get("initContainers")), *items(spec.get("containers"))):
        for source in items(container.get("envFrom")):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                name = text(sub(source, key).get("name"))
                if name:
                    refs.append((kind, name))
        for env in items(container.get("env")):
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                name = text(sub(env, "valueFrom", key).get("name"))
                if name:
                    refs.append((kind, name))
    for volume in items(spec.get("volumes")):
        if text(sub(volume, "configMap").get("name")):
            refs.append(("ConfigMap", str(sub(volume, "configMap")["name"])))
        if text(sub(volume, "secret").get("secretName")):
            refs.append(("Secret", str(sub(volume, "secret")["secretName"])))
    return tuple(dict.fromkeys(refs))


def pod_facts(pod: Any) -> PodFacts | None:
    """The facts of a pod dict, or ``None`` when it is not a readable pod."""
    name = name_of(pod)
    if name is None:
        return None
    status = sub(pod, "status")
    owners = tuple(
        (text(ref.get("kind")) or "", text(ref.get("name")) or "")
        for ref in items(sub(pod, "metadata").get("ownerReferences"))
        if text(ref.get("name"))
    )
    claims = tuple(
        str(claim)
        for volume in items(sub(pod, "spec").get("volumes"))
        if (claim := text(sub(volume, "persistentVolumeClaim").get("claimName"))) is not None
    )
    return PodFacts(
        name=name,
        namespace=namespace_of(pod),
        phase=text(status.get("phase")),
        reason=text(status.get("reason")),
        message=short(status.get("message")),
        node=text(sub(pod, "spec").get("nodeName")),
        start_time=timestamp(status.get("startTime")),
        created_at=timestamp(sub(pod, "metadata").get("creationTimestamp")),
        labels=_strings(labels_of(pod)),
        containers=_containers(mapping(pod)),
        conditions=conditions(pod),
        owners=owners,
        claims=claims,
        config_refs=_config_refs(mapping(pod)),
    )


@dataclass(frozen=True)
class EventFact:
    """One Event, reduced to what diagnosis reads."""

    object_kind: str
    object_name: str
    reason: str
    message: str
    type: str
    count: int
    last_seen: datetime | None
    first_seen: datetime | None


def event_fact(event: Any) -> EventFact | None:
    item = mapping(event)
    involved = mapping(item.get("involvedObject") or item.get("regarding"))
    reason = text(item.get("reason"))
    if reason is None:
        return None
    return EventFact(
        object_kind=text(involved.get("kind")) or "",
        object_name=text(involved.get("name")) or "",
        reason=reason,
        message=short(item.get("message") or item.get("note")),
        type=text(item.get("type")) or "",
        count=max(integer(item.get("count")) or integer(sub(item, "series").get("count")) or 1, 1),
        last_seen=event_time(item),
        first_seen=timestamp(item.get("firstTimestamp")) or timestamp(item.get("eventTime")),
    )


def node_conditions(node: Any) -> dict[str, tuple[str, str]]:
    """Node condition type -> (status, short message)."""
    return {
        kind: (text(condition.get("status")) or "Unknown", short(condition.get("message") or condition.get("reason")))
        for kind, condition in conditions(node).items()
    }


def duration_text(delta: timedelta) -> str:
    """A compact human duration: 45s, 12m, 4h, 3d."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def selector_text(selector: Any) -> str | None:
    """``spec.selector`` (matchLabels, or a plain map as on Services) as ``a=b,c=d``; None if empty."""
    match_labels = mapping(mapping(selector).get("matchLabels")) or mapping(selector)
    pairs = [f"{key}={value}" for key, value in sorted(match_labels.items()) if isinstance(value, str)]
    return ",".join(pairs) or None


def names(values: Sequence[str], limit: int = 5) -> str:
    shown = list(values[:limit])
    return ", ".join(shown) + (f" and {len(values) - limit} more" if len(values) > limit else "")
