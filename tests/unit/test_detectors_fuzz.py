"""Property: no detector raises, whatever JSON-shaped garbage the API (or a cache) hands it.

The generated trees use real Kubernetes field names and values so they reach deep
into the detectors, mixed with wrong types at every level. The detectors are called
directly, bypassing ``detect``'s logging safety net, so a crash here is a real bug.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.detectors import (
    detect_cronjob,
    detect_daemonset,
    detect_deployment,
    detect_job,
    detect_node,
    detect_pod,
    detect_pvc,
    detect_replicaset,
    detect_service,
    detect_statefulset,
)
from core.detectors.findings import Finding

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)

KEYS = [
    "kind",
    "metadata",
    "name",
    "namespace",
    "uid",
    "labels",
    "pod-template-hash",
    "ownerReferences",
    "controller",
    "generation",
    "deletionTimestamp",
    "spec",
    "status",
    "phase",
    "reason",
    "message",
    "conditions",
    "type",
    "lastTransitionTime",
    "containerStatuses",
    "initContainerStatuses",
    "containers",
    "initContainers",
    "resources",
    "limits",
    "memory",
    "state",
    "waiting",
    "terminated",
    "running",
    "lastState",
    "exitCode",
    "finishedAt",
    "restartCount",
    "ready",
    "image",
    "nodeName",
    "replicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "observedGeneration",
    "desiredNumberScheduled",
    "numberReady",
    "numberUnavailable",
    "startTime",
    "failed",
    "selector",
    "subsets",
    "addresses",
    "notReadyAddresses",
    "endpoints",
    "items",
    "involvedObject",
    "fieldPath",
    "count",
    "lastTimestamp",
    "eventTime",
    "series",
    "lastObservedTime",
    "storageClassName",
    "requests",
    "storage",
    "creationTimestamp",
]
WORDS = [
    "Pod",
    "ReplicaSet",
    "Deployment",
    "Job",
    "CronJob",
    "True",
    "False",
    "Unknown",
    "Running",
    "Pending",
    "Failed",
    "Succeeded",
    "Evicted",
    "Unschedulable",
    "CrashLoopBackOff",
    "OOMKilled",
    "Error",
    "ImagePullBackOff",
    "Ready",
    "PodScheduled",
    "Available",
    "Progressing",
    "ReplicaFailure",
    "Complete",
    "MemoryPressure",
    "DiskPressure",
    "Unhealthy",
    "FailedMount",
    "WaitForFirstConsumer",
    "Warning",
    "ExternalName",
    "NewReplicaSetAvailable",
    "2026-11-05T11:00:00Z",
    "2026-11-05T11:59:59.123456Z",
    "2026-13-45T99:00:00Z",
    "spec.containers{app}",
    "spec.initContainers{",
    "app",
    "web-5d8f",
    "5d8f",
    "",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from(WORDS),
    st.text(max_size=20),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    ),
    max_leaves=40,
)


def shaped(template: Any) -> st.SearchStrategy[Any]:
    """A tree following ``template``, any level possibly replaced by garbage.

    Keys ending in "!" are always present (so the trees reach deep), the others optional.
    """
    if isinstance(template, dict):
        required = {key[:-1]: shaped(value) for key, value in template.items() if key.endswith("!")}
        optional = {key: shaped(value) for key, value in template.items() if not key.endswith("!")}
        return mostly(st.fixed_dictionaries(required, optional=optional), json_like)
    if isinstance(template, list):
        return mostly(st.lists(shaped(template[0]), min_size=1, max_size=3), json_like)
    return mostly(template, scalars)


def mostly(fitting: st.SearchStrategy[Any], garbage: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``fitting`` nine times in ten, ``garbage`` otherwise."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda roll: garbage if roll == 0 else fitting)


word = st.sampled_from(WORDS)
name = st.sampled_from(["app", "web-5d8f", "web-5d8f-x", "data-db-0"])
number = st.integers(min_value=-3, max_value=140)
TERMINATED = {"reason": word, "exitCode": number, "message": st.text(max_size=50), "finishedAt": word}
CONDITION = {"type": word, "status": word, "reason": word, "message": word, "lastTransitionTime": word}
METADATA = {
    "name!": name,
    "namespace": word,
    "uid": word,
    "generation": number,
    "deletionTimestamp": word,
    "labels": {"pod-template-hash": word, "kubernetes.io/service-name": word},
    "ownerReferences": [{"kind": word, "name": word, "uid": word, "controller": st.booleans()}],
    "creationTimestamp": word,
}
CONTAINER_STATUS = {
    "name!": name,
    "restartCount": number,
    "ready": st.booleans(),
    "image": word,
    "state!": {"waiting": {"reason": word, "message": word}, "terminated": TERMINATED, "running": {"startedAt": word}},
    "lastState": {"terminated": TERMINATED},
}
POD = {
    "kind": st.just("Pod"),
    "metadata!": METADATA,
    "spec": {"nodeName": word, "containers": [{"name": word, "resources": {"limits": {"memory": word}}}]},
    "status!": {
        "phase": word,
        "reason": word,
        "message": word,
        "conditions": [CONDITION],
        "containerStatuses!": [CONTAINER_STATUS],
        "initContainerStatuses": [CONTAINER_STATUS],
    },
}
EVENT = {
    "involvedObject!": {"kind": word, "name!": name, "namespace": word, "uid": word, "fieldPath": word},
    "reason!": word,
    "message": word,
    "type": word,
    "count": number,
    "lastTimestamp": word,
    "eventTime": word,
    "series": {"lastObservedTime": word},
}
WORKLOAD = {
    "kind": word,
    "metadata!": METADATA,
    "spec": {
        "replicas": number,
        "type": word,
        "selector": {"app": word},
        "storageClassName": word,
        "resources": {"requests": {"storage": word}},
    },
    "status!": {
        key: number
        for key in (
            "replicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "updatedReplicas",
            "observedGeneration",
            "desiredNumberScheduled",
            "numberReady",
            "numberUnavailable",
            "failed",
        )
    }
    | {"conditions!": [CONDITION], "phase": word, "startTime": word},
}
ENDPOINTS = {
    "subsets": [{"addresses": [{"ip": word}], "notReadyAddresses": [{"ip": word}]}],
    "endpoints": [{"conditions": {"ready": st.booleans()}}],
    "items": [{"endpoints": [{"addresses": [word]}]}],
}

pods = shaped(POD)
events = st.lists(shaped(EVENT), max_size=4)
workloads = shaped(WORKLOAD)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bounded(findings: list[Finding]) -> bool:
    return all(isinstance(f, Finding) and len(f.message) <= 500 for f in findings)


@FUZZ
@given(obj=pods, seen=events, other=workloads, now=st.sampled_from([None, NOW]))
def test_pod_detector_never_raises_on_garbage(obj: Any, seen: list[Any], other: Any, now: datetime | None) -> None:
    owners = {"web-5d8f": other, "app": obj}
    assert bounded(detect_pod(obj, seen, owners_index=owners, now=now))


@FUZZ
@given(obj=workloads, other=workloads, seen=events, endpoints=shaped(ENDPOINTS))
def test_workload_and_cluster_detectors_never_raise_on_garbage(
    obj: Any, other: Any, seen: list[Any], endpoints: Any
) -> None:
    for detector in (detect_deployment, detect_statefulset, detect_daemonset, detect_node):
        assert bounded(detector(obj))
    assert bounded(detect_replicaset(obj, owners_index={"x": obj}))
    assert bounded(detect_job(obj))
    assert bounded(detect_cronjob(obj, [other, obj]))
    assert bounded(detect_service(obj, endpoints))
    assert bounded(detect_pvc(obj, seen, now=NOW))
