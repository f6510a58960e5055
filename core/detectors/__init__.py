"""Pure Kubernetes failure detectors: API objects (+ recent Events) in, findings out.

The watchers and ``aiops scan`` share these functions, so a finding means the same
thing in both. Objects are plain dicts exactly as the API serves them in JSON
(camelCase keys). Detectors never raise on odd input: missing, ``null`` or
mistyped fields read as absent, and ``detect`` logs and skips an object if a detector
still fails, so one strange object cannot blind a watcher.

Entry points:

* ``detect(obj, events, *, owners_index, now, endpoints, jobs, kind)`` dispatches on
  ``obj["kind"]`` (or ``kind=`` for list items that lack it) over ``SUPPORTED_KINDS``.
  ``endpoints`` is the Service's Endpoints object or EndpointSlice(s) (``None`` means
  unknown: no Service finding); ``jobs`` are the namespace's Jobs, from which a
  CronJob's children are picked; ``owners_index`` holds known ReplicaSets/Jobs for
  the pod owner chain (see ``owner_chain``); ``now`` enables time-based checks
  (NotReady grace, recent Events, recent lastState) and is never read from a clock.
* ``detect_all(objects, events, *, now)`` for a whole listing: indexes ReplicaSets,
  Jobs, Endpoints and EndpointSlices itself.

Severities (why: critical means "serving is down or about to be"):

==========================================  =========================================
CrashLoopBackOff                            warning; critical when the last termination
                                            was OOMKilled or restarts > 5
OOMKilled                                   critical
ImagePullBackOff, ErrImagePull,             warning
InvalidImageName, CreateContainer*Error,
RunContainerError, NonZeroExit
Unschedulable, Evicted, ProbeFailure,       warning
NotReady, FailedMount, PVCPending
DeploymentUnavailable                       critical with 0 available, else warning
StatefulSetUnavailable                      critical with 0 ready, else warning
DaemonSetUnavailable                        critical with 0 ready of >0 desired, else warning
ProgressDeadlineExceeded, ReplicaFailure,   warning
JobFailed (Job and CronJob)
NodeNotReady                                critical
NodePressure, ServiceNoEndpoints            warning
==========================================  =========================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.detectors.findings import Finding
from core.detectors.nodes import detect_node
from core.detectors.objects import items, kind_of, labels_of, mapping, name_of, namespace_of, text
from core.detectors.owners import OwnersIndex, owner_chain
from core.detectors.pods import detect_pod
from core.detectors.services import detect_service
from core.detectors.storage import detect_pvc
from core.detectors.workloads import (
    detect_cronjob,
    detect_daemonset,
    detect_deployment,
    detect_job,
    detect_replicaset,
    detect_statefulset,
)

logger = logging.getLogger(__name__)

# What a watcher (or ``aiops scan``) must list to feed the detectors: namespaced kinds,
# plus Endpoints for Service checks and Events for probe/mount failures; and cluster kinds.
NAMESPACED_INPUT_KINDS: tuple[str, ...] = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "PersistentVolumeClaim",
    "Service",
    "Endpoints",
    "Event",
)
CLUSTER_INPUT_KINDS: tuple[str, ...] = ("Node",)

SUPPORTED_KINDS: frozenset[str] = frozenset(
    {
        "Pod",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "PersistentVolumeClaim",
        "Node",
        "Service",
    }
)


def _dispatch(
    kind: str,
    obj: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    owners_index: OwnersIndex | None,
    now: datetime | None,
    endpoints: Any,
    jobs: Sequence[Mapping[str, Any]],
) -> list[Finding]:
    handlers: dict[str, Callable[[], list[Finding]]] = {
        "Pod": lambda: detect_pod(obj, events, owners_index=owners_index, now=now),
        "Deployment": lambda: detect_deployment(obj),
        "ReplicaSet": lambda: detect_replicaset(obj, owners_index=owners_index),
        "StatefulSet": lambda: detect_statefulset(obj),
        "DaemonSet": lambda: detect_daemonset(obj),
        "Job": lambda: detect_job(obj, owners_index=owners_index),
        "CronJob": lambda: detect_cronjob(obj, jobs),
        "PersistentVolumeClaim": lambda: detect_pvc(obj, events, now=now),
        "Node": lambda: detect_node(obj),
        "Service": lambda: detect_service(obj, endpoints),
    }
    handler = handlers.get(kind)
    return handler() if handler is not None else []


def detect(
    obj: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    owners_index: OwnersIndex | None = None,
    now: datetime | None = None,
    endpoints: Any = None,
    jobs: Sequence[Mapping[str, Any]] = (),
    kind: str | None = None,
) -> list[Finding]:
    """Findings for one object; ``[]`` for healthy, progressing, unknown or malformed objects."""
    if not isinstance(obj, Mapping):
        return []
    try:
        resolved = kind or kind_of(obj)
        if resolved not in SUPPORTED_KINDS:
            return []
        return _dispatch(resolved, obj, events or (), owners_index, now, endpoints, jobs or ())
    except Exception:  # a detector bug must not stop the watcher; it is logged, never silent
        logger.exception("detector failed on a %s object; skipped", kind or type(obj).__name__)
        return []


def _key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


def detect_all(
    objects: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    now: datetime | None = None,
) -> list[Finding]:
    """Findings for a whole listing (any mix of kinds, each with ``kind`` set).

    ReplicaSets and Jobs in ``objects`` feed the owner chains, Endpoints and
    EndpointSlices (``kubernetes.io/service-name`` label) the Service checks, Jobs the
    CronJob checks, and Events are handed only to the object they involve.
    """
    listing = items(objects)
    owners: dict[str, Mapping[str, Any]] = {}
    endpoints: dict[str, Any] = {}
    slices: dict[str, list[Mapping[str, Any]]] = {}
    jobs_by_namespace: dict[str | None, list[Mapping[str, Any]]] = {}
    for obj in listing:
        kind, name, namespace = kind_of(obj), name_of(obj), namespace_of(obj)
        if kind is None or name is None:
            continue
        if kind in ("ReplicaSet", "Job"):
            owners[_key(kind, namespace, name)] = obj
        if kind == "Job":
            jobs_by_namespace.setdefault(namespace, []).append(obj)
        elif kind == "Endpoints":
            endpoints[_key("Service", namespace, name)] = obj
        elif kind == "EndpointSlice" and (service := text(labels_of(obj).get("kubernetes.io/service-name"))):
            slices.setdefault(_key("Service", namespace, service), []).append(obj)
    events_by_object: dict[str, list[Mapping[str, Any]]] = {}
    for event in items(events):
        involved = mapping(event.get("involvedObject") or event.get("regarding"))
        kind, name = text(involved.get("kind")), text(involved.get("name"))
        if kind is not None and name is not None:  # namespace and uid are checked by each detector
            events_by_object.setdefault(f"{kind}/{name}", []).append(event)
    findings: list[Finding] = []
    for obj in listing:
        kind, name, namespace = kind_of(obj), name_of(obj), namespace_of(obj)
        if kind not in SUPPORTED_KINDS or name is None:
            continue
        key = _key(kind, namespace, name)
        findings.extend(
            detect(
                obj,
                events_by_object.get(f"{kind}/{name}", ()),
                owners_index=owners,
                now=now,
                endpoints=endpoints.get(key, slices.get(key)),
                jobs=jobs_by_namespace.get(namespace, ()),
            )
        )
    return findings


__all__ = [
    "CLUSTER_INPUT_KINDS",
    "NAMESPACED_INPUT_KINDS",
    "SUPPORTED_KINDS",
    "Finding",
    "OwnersIndex",
    "detect",
    "detect_all",
    "detect_cronjob",
    "detect_daemonset",
    "detect_deployment",
    "detect_job",
    "detect_node",
    "detect_pod",
    "detect_pvc",
    "detect_replicaset",
    "detect_service",
    "detect_statefulset",
    "owner_chain",
]
