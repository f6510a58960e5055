"""The signature library, placement failures: scheduling, storage and nodes.

These causes live outside the container: the scheduler cannot place the pod
(resources versus constraints), its volume cannot be bound or provisioned, or the node
under it fails or runs out of memory/disk. The evidence is scheduler messages, PVC
and StorageClass state, node conditions and eviction messages.
"""

from __future__ import annotations

import re

from core.rca.categories import Category, Match
from core.rca.context import Context, clip, event_line, where
from core.rca.facts import EventFact, node_conditions

_INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9][\w./-]*\w)|Too many pods", re.IGNORECASE)
_CONSTRAINT = re.compile(
    r"untolerated taint|had taints?|node affinity|node selector|didn't match|anti-affinity|topology spread|"
    r"free ports|volume node affinity conflict|didn't satisfy",
    re.IGNORECASE,
)
_UNBOUND = re.compile(
    r"unbound (?:immediate )?PersistentVolumeClaims|persistentvolumeclaim \"([^\"]+)\" not found", re.IGNORECASE
)
_PROVISION = re.compile(r"storageclass[\w.]* \"([^\"]+)\" not found|failed to provision|ProvisioningFailed", re.I)
_NO_PV = re.compile(r"no persistent volumes available|no storage class is set|waiting for a volume", re.I)
_LOW_ON = re.compile(r"low on resource: ([\w-]+)", re.IGNORECASE)
_PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure")


def _scheduler_messages(ctx: Context) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for pod in ctx.pods:
        message = pod.unschedulable_message
        if message:
            found.append((message, f"{where(pod)}: PodScheduled=False: {clip(message, 240)}"))
    for event in ctx.pod_events("FailedScheduling"):
        found.append((event.message, event_line(event)))
    return found


def scheduling(ctx: Context) -> Match | None:
    messages = _scheduler_messages(ctx)
    joined = " ".join(message for message, _ in messages)
    if not messages or _UNBOUND.search(joined):
        return None
    lines = [line for _, line in messages[:3]]
    resources = sorted({m.group(1) or "pods" for m in _INSUFFICIENT.finditer(joined)})
    if resources:
        requests = [
            f"{where(p, c)}: requests {dict(c.requests)}" for p in ctx.pods[:1] for c in p.containers if c.requests
        ]
        return Match(
            Category.INSUFFICIENT_RESOURCES,
            f"Unschedulable: no node has enough {', '.join(resources)} for the pod's requests",
            tuple([*lines, *requests[:2]]),
            0.9,
            None,
            "insufficient",
        )
    constraint = _CONSTRAINT.search(joined)
    if constraint is not None:
        return Match(
            Category.SCHEDULING_CONSTRAINTS,
            f"Unschedulable: no node satisfies the pod's placement constraints ({constraint.group(0)})",
            tuple(lines),
            0.88,
            None,
            "constraints",
        )
    return None


def _claim_events(ctx: Context, name: str) -> list[EventFact]:
    return list(ctx.evidence.events_of("PersistentVolumeClaim", name))


def storage(ctx: Context) -> Match | None:
    """An unbound or unprovisionable PVC, from the PVC itself, its events and the scheduler."""
    evidence = ctx.evidence
    joined_scheduler = " ".join(message for message, _ in _scheduler_messages(ctx))
    claims = [r for r in evidence.objects if r.kind == "PersistentVolumeClaim"]
    subject = evidence.subject.object
    for record in claims:
        phase = (record.body or {}).get("status", {}).get("phase") if record.body else None
        if record.body is not None and phase == "Bound":
            continue
        events = _claim_events(ctx, record.name)
        lines = [
            f"PersistentVolumeClaim/{record.namespace}/{record.name}: "
            + (f"phase={phase}" if record.body is not None else f"unavailable ({record.unavailable})")
        ]
        lines.extend(event_line(e) for e in events[-3:])
        storage_class = (record.body or {}).get("spec", {}).get("storageClassName") if record.body else None
        class_missing = storage_class and evidence.missing("StorageClass", storage_class)
        messages = " ".join(e.message for e in events)
        if class_missing or any(e.reason == "ProvisioningFailed" for e in events) or _PROVISION.search(messages):
            if class_missing:
                lines.append(f"StorageClass/{storage_class}: {class_missing}")
                cause = f'Provisioning failed: StorageClass "{storage_class}" of PVC {record.name} does not exist'
            else:
                cause = f"Provisioning failed for PVC {record.name}: {clip(messages, 160)}"
            return Match(Category.PROVISIONING_FAILED, cause, tuple(lines), 0.9, None, "provisioning_failed")
        if record.body is None:
            return Match(
                Category.PVC_UNBOUND,
                f"PVC {record.name} used by the pod does not exist",
                tuple(lines),
                0.8,
                None,
                "pvc_missing",
            )
        if _NO_PV.search(messages) or (subject is not None and subject.kind == "PersistentVolumeClaim"):
            detail = clip(messages, 160) if messages else f"phase {phase}"
            return Match(
                Category.PVC_UNBOUND, f"PVC {record.name} is unbound: {detail}", tuple(lines), 0.85, None, "pvc_unbound"
            )
        if _UNBOUND.search(joined_scheduler):
            return Match(
                Category.PVC_UNBOUND,
                f"PVC {record.name} is unbound ({phase}); the pod cannot be scheduled",
                tuple(lines),
                0.8,
                None,
                "pvc_unbound_scheduler",
            )
    if _UNBOUND.search(joined_scheduler):
        lines = [line for _, line in _scheduler_messages(ctx)[:2]]
        return Match(
            Category.PVC_UNBOUND,
            "Unschedulable: the pod's PersistentVolumeClaim is unbound",
            tuple(lines),
            0.7,
            None,
            "pvc_unbound_scheduler",
        )
    return None


def node(ctx: Context) -> Match | None:
    """The node under the pod (or the subject node) is NotReady, or evicts pods under pressure."""
    for pod in ctx.pods:
        evicted = pod.reason == "Evicted" or "low on resource" in pod.message
        low = _LOW_ON.search(pod.message)
        if evicted:
            resource = low.group(1) if low else "resources"
            line = clip(f"{where(pod)}: status.reason={pod.reason} message={pod.message}")
            return Match(
                Category.NODE_PRESSURE,
                f"Node pressure: pod evicted because node {pod.node or '?'} was low on {resource}",
                (line, *_node_lines(ctx, pod.node)),
                0.9,
                "node-not-ready",
                "evicted",
            )
    node_names = [record.name for record in ctx.evidence.objects if record.kind == "Node" and record.body]
    for name in node_names:
        body = ctx.evidence.get("Node", name)
        conditions = node_conditions(body)
        ready = conditions.get("Ready")
        lines = _node_lines(ctx, name)
        if ready is not None and ready[0] != "True":
            return Match(
                Category.NODE_FAILURE,
                f"Node failure: node {name} is NotReady ({clip(ready[1], 120)})",
                tuple(lines),
                0.9,
                "node-not-ready",
                "node_not_ready",
            )
        pressures = [kind for kind in _PRESSURE if conditions.get(kind, ("False", ""))[0] == "True"]
        if pressures:
            subject = ctx.evidence.subject
            direct = subject.reason in ("NodePressure", "Evicted") or (
                subject.object is not None and subject.object.kind == "Node"
            )
            return Match(
                Category.NODE_PRESSURE,
                f"Node pressure: node {name} reports {', '.join(pressures)}",
                tuple(lines),
                0.85 if direct else 0.6,
                "node-not-ready",
                "node_pressure",
            )
    for pod in ctx.pods:
        if pod.reason == "NodeLost" or any(e.reason in ("NodeNotReady", "TaintManagerEviction") for e in ctx.events):
            lines = [
                clip(f"{where(pod)}: status.reason={pod.reason} {pod.message}"),
                *(event_line(e) for e in ctx.pod_events("NodeNotReady", "TaintManagerEviction")[-2:]),
            ]
            return Match(
                Category.NODE_FAILURE,
                f"Node failure: node {pod.node or '?'} of the pod is not ready",
                tuple(lines),
                0.75,
                "node-not-ready",
                "pod_node_lost",
            )
    return None


def _node_lines(ctx: Context, name: str | None) -> list[str]:
    if name is None:
        return []
    conditions = node_conditions(ctx.evidence.get("Node", name))
    lines = [
        clip(f"Node/{name}: {kind}={status} {message}")
        for kind, (status, message) in conditions.items()
        if (kind == "Ready") or status == "True"
    ]
    lines.extend(event_line(e) for e in ctx.evidence.events_of("Node", name)[-2:])
    return lines[:5]


PLACEMENT_SIGNATURES = (storage, scheduling, node)
